"""objdump 2.40's x86 ``-M`` options beyond the syntax: ``data16``/``data32``/``addr16``/
``addr32``/``addr64`` (the decoder's default operand and address size), ``intel-mnemonic``
/ ``att-mnemonic`` (the x87 names), ``intel64``/``amd64`` (the 64-bit ISA), read by prefix
and in order as i386-dis.c reads them.

Each listing is compared byte for byte with objdump run here on the same command line: on
random bytes (``-D -b binary``) in 16-, 32- and 64-bit code, each option set also with
``-M intel``, on pinned byte strings (the cases the random listings found first), and on
real code (a system binary and a gcc-built object).
"""

from __future__ import annotations

import random
import subprocess

import pytest

from support import oracles
from support.disasm_cli import MACHINES, objdump, random_binaries, run_cli
from support.oracles import require_file
from x86vm.disasm.x86_options import parse_x86_options, split_items

pytestmark = pytest.mark.oracle("objdump-2.40")

SIZE_OPTIONS = ["data16", "data32", "addr16", "addr32", "addr64", "data16,addr32",
                "addr16,data16", "i8086,data32,addr32", "i386,data16,addr16", "intel64",
                "amd64", "intel64,data16", "amd64,addr32"]
RANDOM_BYTES = 12 * 1024

#: what the random listings found first: with -M data16 in 64-bit code a 66 makes a near
#: branch rel32 ("calll") and pushf/leave/enter "l" (their 66 used), push imm "pushl" with
#: the immediate sign-extended to 64 bits, REX.W push & co. print no suffix, vmread stays
#: 64-bit, an indirect call through memory with 66 is "calll" in AT&T but "data32 call
#: QWORD PTR" in Intel; with -M addr32 a moffs is still 64-bit (movabs) unless a 67 is
#: there; in 32-bit code with -M addr16 a 67 before a displacement-only address prints
#: "addr32"; XOP keeps R and X outside 64-bit mode (an index %r11d in 32-bit code)
PINNED = ["66e800006690", "a10000000000000000", "66a100000000", "669c", "489c", "66489c",
          "66c9", "48c9", "66c8010002", "666aff", "6668b66a6c99", "0f78da", "ffd4",
          "66ff1500000000", "66ff20", "ff1c24", "66ff1c24", "67f735e23b0fc6", "67210504030201",
          "8f89789a84d90f", "e3fe", "67e3fe", "e2fe", "67e2fe", "66cf", "48cf", "dce1", "def9",
          "dee1", "dcf9", "66e9fdff", "e9fdffffff", "0f20c0", "67a000000000", "6750", "6650",
          "66ff36", "66ff10", "66ff20", "48ff18", "49ffa9f7ff4371", "4cffaf199c591d",
          "6663c0", "666300", "664863c0", "66c3", "66c20800", "660f8400000000", "0f34",
          "0f35", "480f35", "660f34", "f2f30fc51d", "f3660fc5c1", "65f20fc51d",
          "f2f30f50c1", "66f30f50c1"]
#: and with -M intel64 in 64-bit code: near branches ignore 66 ("data16 call", rel32, a
#: 64-bit indirect target), REX.W far pointers are m16:64 ("lcallq"; objdump's Intel text
#: keeps "rex.W" and the FWORD/DWORD of the pointer without it), movsxd with a 16-bit
#: operand size reads a word; -M amd64: sysenter/sysexit are "(bad)"; and in any mode
#: pextrw/movmskps with F2/F3 are "(bad)" without prefix words (objdump's PREFIX_OPCODE)


def differing(args: list[str], capsys) -> list[tuple[str, str]]:
    want = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (want.returncode, want.stderr.replace("objdump:", "x86vm:"))
    got, expected = out.splitlines(), want.stdout.splitlines()
    assert len(got) == len(expected), (len(got), len(expected))
    return [(a, b) for a, b in zip(expected, got, strict=True) if a != b]


@pytest.fixture(scope="module")
def random_files(tmp_path_factory) -> dict[int, str]:
    return random_binaries(tmp_path_factory.mktemp("x86_options"), "x86-options", RANDOM_BYTES)


@pytest.mark.parametrize("mode", [16, 32, 64])
@pytest.mark.parametrize("options", SIZE_OPTIONS)
@pytest.mark.parametrize("syntax", ["", "intel,"])
def test_size_options_on_random_bytes_match_objdump(capsys, random_files, mode, options,
                                                    syntax):
    args = ["-D", "-b", "binary", "-m", MACHINES[mode], "-M", syntax + options,
            random_files[mode]]
    assert differing(args, capsys) == []


@pytest.mark.parametrize("mode", [16, 32, 64])
@pytest.mark.parametrize("options", ["data16", "addr32", "data16,addr32", "intel,data16",
                                     "intel,addr16", "intel-mnemonic,att", "intel-mnemonic",
                                     "att-mnemonic", "data32,addr64", "intel,i8086",
                                     "intel64", "intel,intel64", "intel,intel64,data16",
                                     "amd64", "intel,amd64", "intel64,amd64"])
def test_pinned_cases_match_objdump(capsys, tmp_path, mode, options):
    rng = random.Random(mode)
    path = tmp_path / "pinned.bin"
    path.write_bytes(b"".join(bytes.fromhex(h) + rng.randbytes(10) for h in PINNED))
    args = ["-D", "-b", "binary", "-m", MACHINES[mode], "-M", options, str(path)]
    assert differing(args, capsys) == []


@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory) -> list[str]:
    oracles.require("gcc")
    require_file("/usr/bin/true")
    work = tmp_path_factory.mktemp("x86_options_real")
    source = work / "fp.c"
    source.write_text("double f(double a, double b) { return (a - b) / (b - a) * 3; }\n"
                      "long g(long *p, int n) { long s = 0; while (n--) s += p[n];"
                      " return s; }\n")
    paths = ["/usr/bin/true"]
    for name, flags in {"fp32.o": ["-m32", "-mfpmath=387", "-O2"], "fp.o": ["-O2"]}.items():
        proc = subprocess.run(["gcc", *flags, "-c", str(source), "-o", str(work / name)],
                              capture_output=True)
        if proc.returncode == 0:
            paths.append(str(work / name))
    return paths


@pytest.mark.parametrize("options", ["data16", "addr32", "intel,data16,addr32",
                                     "i386,data16", "i8086", "intel-mnemonic,att",
                                     "att-mnemonic", "intel-mnemonic"])
def test_options_on_real_code_match_objdump(capsys, real_inputs, options):
    for path in real_inputs:
        assert differing(["-d", "-M", options, path], capsys) == [], path


def test_x87_intel_mnemonic_names_in_att(capsys, real_inputs):
    """-M intel-mnemonic,att: objdump's Intel fsub/fsubr names in AT&T (not the SysV swap)."""
    fp32 = [p for p in real_inputs if p.endswith("fp32.o")]
    if not fp32:
        pytest.skip("no gcc -m32")
    code, out, _ = run_cli(["-d", "-M", "intel-mnemonic,att", fp32[0]], capsys)
    code, plain, _ = run_cli(["-d", fp32[0]], capsys)
    assert out != plain and out == objdump(["-d", "-M", "intel-mnemonic,att",
                                            fp32[0]]).stdout


def test_items_are_read_by_prefix_in_order() -> None:
    assert split_items(["intel, data16", ",,addr32,"]) == ["intel", "data16", "addr32"]
    read = parse_x86_options
    assert read(["intelx"], 64).syntax == "intel"
    assert read(["data16xyz"], 64).operand_size == 16
    assert read(["x86_64"], 32).mode == 32          # objdump knows only x86-64
    assert read(["data16,i386"], 64).operand_size == 32    # a mode resets the sizes
    assert read(["i386,data16"], 64).operand_size == 16
    assert read(["addr32"], 64).address_size == 32
    assert read(["addr16"], 64).address_size == 64  # no 16-bit addressing in 64-bit code
    assert read(["addr32"], 16).address_size == 32
    assert read(["i8086"], 64) == read([], 16)
    assert read(["intel-mnemonic"], 64).syntax == "intel"
    assert read(["intel-mnemonic", "att"], 64).intel_mnemonic
    assert not read(["intel-mnemonic", "att-mnemonic"], 64).intel_mnemonic
