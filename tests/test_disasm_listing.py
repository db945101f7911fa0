"""Listings against objdump 2.40 (the oracle), on a sample kept well under a minute.

Two kinds of test:

* **Layout and symbols** (no decoder needed): x86vm's listing engine is driven by a stand-in
  formatter that returns objdump's own instruction lengths and texts (``OracleFormatter``), and
  must then reproduce ``objdump -d`` byte for byte: header, sections, labels, address column,
  raw-byte wrapping, ``...``, data dumps, and every ``ADDR <sym+0xoff>`` objdump printed
  (checked against our ``print_address``).
* **Differential** (needs ``x86vm.isa``): the real decoder and formatters against objdump on
  sampled functions of the machine's binaries, the shared testdata corpora and random bytes;
  length and text mismatches are counted separately. ``scripts/disasm-corpus`` runs it all.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from oracle.elfwriter import write_snippets_elf
from oracle.known import assert_known
from oracle.objdump import OracleFormatter, parse_wide_listing, run_objdump
from oracle.testdata import snippets_by_mode as _snippets_by_mode
from support.oracles import require, require_file
from x86vm.cli import build_parser
from x86vm.cli.disasm import _options
from x86vm.disasm.elf import BSF_FUNCTION, load_elf
from x86vm.disasm.listing import binary_image, elf_image, write_listing

pytestmark = pytest.mark.oracle("objdump-2.40")

PYTHON = "/usr/bin/python3.11"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
MACHINE_ARG = {16: "i8086", 32: "i386", 64: "i386:x86-64"}


def snippets_by_mode() -> dict[int, list[bytes]]:
    require("testdata")
    return _snippets_by_mode()




def _listing_options(args: list[str], path: str):
    """ListingOptions exactly as ``x86vm disasm ARGS PATH`` would build them."""
    namespace = build_parser().parse_args(["disasm", *args, path])
    return _options(namespace)


def oracle_layout(path: str, args: list[str], mode: int | None = None) -> tuple[str, str,
                                                                             OracleFormatter]:
    """(objdump's listing, ours driven by objdump's own instruction texts, the stand-in)."""
    expected = run_objdump(args, path)
    wide = [a for a in args if not a.startswith("--insn-width") and a != "-w"] + ["-w"]
    formatter = OracleFormatter(parse_wide_listing(run_objdump(wide, path)))
    options, _syntax, mode_override = _listing_options(args, path)
    out = io.StringIO()
    if "binary" in args:
        with open(path, "rb") as stream:
            data = stream.read()
        adjust = next((int(a.split("=")[1], 0) for a in args if a.startswith("--adjust-vma=")), 0)
        image = binary_image(path, data, mode_override, adjust)
    else:
        with open(path, "rb") as stream:
            image = elf_image(load_elf(path, stream))
            write_listing(image, formatter, options, out.write)
        return expected, out.getvalue(), formatter
    write_listing(image, formatter, options, out.write)
    return expected, out.getvalue(), formatter


def assert_same_listing(expected: str, got: str, formatter: OracleFormatter) -> None:
    if got != expected:
        pairs = zip(expected.split("\n"), got.split("\n"), strict=False)
        first = next(((i, a, b) for i, (a, b) in enumerate(pairs) if a != b), None)
        raise AssertionError(f"listing differs from objdump at line {first}")
    assert not formatter.misses, f"asked to decode where objdump did not: {formatter.misses[:5]}"
    assert not formatter.address_mismatches, formatter.address_mismatches[:5]


def sampled_ranges(path: str, count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` function ranges of ``path`` (deterministic), plus its PLT and first code."""
    with open(path, "rb") as stream:
        elf = load_elf(path, stream)
    text = next(s for s in elf.sections if s.name == ".text")
    functions = sorted({(s.value, s.value + s.size) for s in elf.symbols
                        if s.flags & BSF_FUNCTION and s.size and s.section == text.index})
    ranges = random.Random(seed).sample(functions, min(count, len(functions)))
    for section in elf.sections:
        if section.name in (".plt", ".plt.sec", ".init"):
            ranges.append((section.vma, section.vma + min(section.size, 0x200)))
    ranges.append((text.vma, text.vma + 0x400))
    middle = functions[len(functions) // 2]  # a start inside a function: <func+0x..> label
    ranges.append((middle[0] + 3, middle[0] + 0x180))
    return sorted(ranges)


def _binary_available(path: str) -> None:
    require_file(path)


# -- layout and symbols (decoder-independent) ---------------------------------------------------

@pytest.mark.parametrize("path", [PYTHON, LIBC])
def test_layout_of_sampled_ranges_matches_objdump(path):
    _binary_available(path)
    for start, stop in sampled_ranges(path, 6, seed=1):
        args = ["-d", f"--start-address=0x{start:x}", f"--stop-address=0x{stop:x}"]
        expected, got, formatter = oracle_layout(path, args)
        assert_same_listing(expected, got, formatter)
        assert formatter.address_checks > 0 or "call" not in expected


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """A small C program built several ways: object, PIE, non-PIE, IBT PLT, -g."""
    require("gcc")
    gcc = shutil.which("gcc")
    tmp = tmp_path_factory.mktemp("programs")
    source = tmp / "prog.c"
    source.write_text(
        "#include <stdio.h>\n"
        "static int helper(int x) { return x * 3 + 1; }\n"
        "int table[16] = {1, 2, 3};\n"
        "const char msg[] = \"hello\\tworld\";\n"
        "__attribute__((noinline)) int compute(int n) { int s = 0;\n"
        "  for (int i = 0; i < n; i++) s += helper(i) ^ table[i & 15]; return s; }\n"
        "int main(int argc, char **argv) { printf(\"%d %s\\n\", compute(argc), msg);\n"
        "  puts(argv[0]); return 0; }\n")
    builds = {
        "prog.o": ["-O2", "-c"],
        "prog-cf.o": ["-O2", "-c", "-fcf-protection=full"],
        "prog-pie": ["-O2"],
        "prog-nopie": ["-O2", "-no-pie"],
        "prog-ibt": ["-O2", "-fcf-protection=full", "-Wl,-z,ibtplt"],
        "prog-g": ["-O0", "-g"],
        "prog-gz.o": ["-O2", "-g", "-gz=zlib", "-c"],  # SHF_COMPRESSED debug sections
    }
    out = {}
    for name, flags in builds.items():
        target = tmp / name
        subprocess.run([gcc, *flags, str(source), "-o", str(target)], check=True,
                       capture_output=True)
        out[name] = str(target)
    return out


OPTION_SETS = [
    ["-d"],
    ["-D"],
    ["-d", "-w"],
    ["-d", "--insn-width=4"],
    ["-d", "--disassemble=compute"],
    ["-d", "-j", ".text"],
    ["-D", "-j", ".data", "-j", ".rodata"],
    ["-d", "-j", ".debug_info", "-j", ".debug_line"],
]


DEBUG_BUILDS = ("prog-g", "prog-gz.o")     # the builds with -g: only they have .debug_*
COMPILED_CASES = [pytest.param(name, args, id=f"{' '.join(args)}-{name}")
                  for name in ("prog.o", "prog-cf.o", "prog-pie", "prog-nopie", "prog-ibt",
                               *DEBUG_BUILDS)
                  for args in OPTION_SETS if ".debug_info" not in args or name in DEBUG_BUILDS]


@pytest.mark.parametrize(("name", "args"), COMPILED_CASES)
def test_layout_of_compiled_programs_matches_objdump(programs, name, args):
    wanted = {args[i + 1] for i, arg in enumerate(args) if arg == "-j"}
    with open(programs[name], "rb") as stream:
        present = {section.name for section in load_elf(programs[name], stream).sections}
    assert wanted <= present, f"{name} lacks {' '.join(sorted(wanted - present))}"
    expected, got, formatter = oracle_layout(programs[name], args)
    assert_same_listing(expected, got, formatter)


def test_data_objects_in_code_are_dumped_as_data(tmp_path):
    path = str(tmp_path / "objects.o")
    snippets = [b"\x55\x48\x89\xe5\xc3", b"hello, world\x00\x01\x02" * 3, b"\x90" * 9,
                bytes(20) + b"\xc3"]
    write_snippets_elf(path, snippets, 64, objects={1})
    for args in (["-d"], ["-D"], ["-d", "-w"]):
        expected, got, formatter = oracle_layout(path, args)
        assert "hello, world" in expected or args == ["-D"]
        assert_same_listing(expected, got, formatter)


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_layout_of_raw_binary_images_matches_objdump(tmp_path, mode):
    snippets = snippets_by_mode()[mode]
    blob = b"".join(random.Random(mode).sample(snippets, 200)) + bytes(13) + b"\xc3" + bytes(2)
    path = str(tmp_path / f"image{mode}.bin")
    with open(path, "wb") as out:
        out.write(blob)
    for extra in ([], ["--adjust-vma=0x7c00"], ["-w"]):
        args = ["-D", "-b", "binary", "-m", MACHINE_ARG[mode], *extra]
        expected, got, formatter = oracle_layout(path, args)
        assert_same_listing(expected, got, formatter)


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_layout_of_separately_listed_snippets_matches_objdump(tmp_path, mode):
    snippets = random.Random(mode + 10).sample(snippets_by_mode()[mode], 300)
    path = str(tmp_path / f"snippets{mode}.o")
    write_snippets_elf(path, snippets, 64 if mode == 64 else 32)
    args = ["-d"] + (["-m", "i8086"] if mode == 16 else [])
    expected, got, formatter = oracle_layout(path, args)
    assert_same_listing(expected, got, formatter)


# -- differential: the real decoder against objdump ----------------------------------------------

@pytest.mark.parametrize("syntax", ["att", "intel"])
@pytest.mark.parametrize("path", [PYTHON, LIBC])
def test_sampled_functions_decode_like_objdump(path, syntax):
    from oracle.compare import Tally, compare_elf

    _binary_available(path)
    total = Tally()
    for start, stop in sampled_ranges(path, 8, seed=2):
        total.add(compare_elf(path, syntax, start, stop))
    assert total.instructions > 500
    assert total.ok, total.summary() + "\n" + "\n".join(total.examples)


@pytest.mark.parametrize("syntax", ["att", "intel"])
@pytest.mark.parametrize("mode", [16, 32, 64])
def test_testdata_sample_decodes_like_objdump(mode, syntax):
    from oracle.compare import compare_snippets

    snippets = snippets_by_mode()[mode]
    sample = random.Random(mode * 7).sample(snippets, min(400, len(snippets)))
    tally = compare_snippets(sample, mode, syntax)
    assert tally.instructions >= len(sample)
    report = tally.summary() + "\n" + "\n".join(tally.examples)
    assert tally.exceptions == 0, report
    # exactly the known testdata mismatches (tests/oracle/known_mismatches.jsonl) among these
    assert_known("testdata", mode, syntax, tally.mismatches, sample=(s.hex() for s in sample))


@pytest.mark.parametrize("mode", [16, 32, 64])
@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_bytes_decode_with_objdump_lengths(mode, seed):
    """200 random 15-byte strings per example (drawn from a hypothesis-chosen seed), each
    listed on its own; every failing string is in the report, so nothing is shrunk. Length
    and text; the examples are derandomized, so their mismatches are exactly the listed ones
    (suite ``random-batches`` in tests/oracle/known_mismatches.jsonl)."""
    from oracle.compare import compare_snippets

    rng = random.Random(seed)
    batch = [rng.randbytes(15) for _ in range(200)]
    tally = compare_snippets(batch, mode, "att")
    print(f"random {mode}-bit: {tally.summary()}")
    assert tally.exceptions == 0, tally.examples
    assert_known("random-batches", mode, "att", tally.mismatches,
                 sample=(s.hex() for s in batch))


def test_disassemble_a_plt_stub_like_objdump(programs):
    """objdump lists a ``name@plt`` to the end of the PLT, then complains that it read past
    the section (a size PLT symbols lack); x86vm lists the same lines without the complaint."""
    path = programs["prog-pie"]
    expected, got, formatter = oracle_layout(path, ["--disassemble=puts@plt"])
    expected = "".join(line for line in expected.splitlines(keepends=True)
                       if "is out of bounds." not in line)
    assert "<puts@plt>:" in got
    assert got.replace("\n\n\n", "\n\n") == expected.replace("\n\n\n", "\n\n")
    assert not formatter.address_mismatches
