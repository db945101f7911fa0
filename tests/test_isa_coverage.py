"""Coverage beyond python3.11/libc, against objdump 2.40: real code and other suites' bytes.

Real code the other tests do not name (kernel code with system instructions, 16- and 32-bit
code, other binaries): every mismatch in length or text must be one listed in
tests/oracle/known_mismatches.jsonl (none are, today), and nothing else may differ.  These
are samples that run in seconds; `python3 tests/isa_realcode.py` measures every input in full
(numbers in docs/isa.md).  An absent input skips, naming its oracle (tests/support/oracles.py;
X86VM_REQUIRE makes that a failure).  Expected text always comes from objdump on this machine.
"""

from __future__ import annotations

import os
import random
import tempfile

import pytest

from isa_compare import load_code
from isa_realcode import BUILD, LINUX, SEABIOS, build_code32
from oracle.compare import code_mismatches, compare_snippets
from oracle.known import assert_known
from oracle.testdata import snippets_by_mode
from support.oracles import require, require_file

pytestmark = pytest.mark.oracle("objdump-2.40")


def _check(path: str, mode: int, windows: list[tuple[int, int]] | None = None) -> None:
    require_file(path)
    data, address = load_code(path)
    for start, size in windows or [(0, len(data))]:
        chunk = data[start:start + size]
        for syntax in ("att", "intel"):
            n, wrong = code_mismatches(chunk, address + start, mode, syntax)
            assert n > 0
            assert_known(f"realcode:{os.path.basename(path)}", mode, syntax, wrong)


def _around(path: str, needles: list[bytes], size: int = 6000) -> list[tuple[int, int]]:
    """Windows of `size` bytes starting a little before each needle's first occurrence."""
    data, _ = load_code(path)
    out = []
    for needle in needles:
        at = data.find(needle)
        if at >= 0:
            out.append((max(0, at - 2000), size))
    return out


def test_linux_kernel_system_code() -> None:
    """vmlinux: windows at spread offsets plus around system instructions (swapgs, invpcid,
    wrmsr, xsaves, AMX tilerelease, the 16-bit-to-64-bit trampolines)."""
    path = os.path.join(LINUX, "vmlinux")
    require_file(path)
    data, _ = load_code(path)
    spread = [(int(len(data) * f), 20000) for f in (0.05, 0.35, 0.65, 0.95)]
    needles = [bytes.fromhex(h) for h in ("0f01f8", "660f3882", "0f30", "0fc72f", "c4e27849c0",
                                          "0f01d0", "0f22d8")]
    _check(path, 64, spread + _around(path, needles))


def test_linux_setup_16bit() -> None:
    """arch/x86/boot/setup.elf: the -m16 real-mode setup code, as objdump -m i8086 sees it."""
    _check(os.path.join(BUILD, "arch", "x86", "boot", "setup.elf"), 16)


@pytest.mark.parametrize("mode", [16, 32])
def test_seabios(mode: int) -> None:
    """SeaBIOS: 16-bit real-mode and 32-bit flat-mode code (the whole 128 KiB image)."""
    _check(SEABIOS, mode)


def test_code32_compiled_here() -> None:
    """The kernel's inflate built here with gcc -m32 (i386 and AVX-512 flavours)."""
    require("gcc-m32", "linux-guest")
    objs = build_code32(["decompress_inflate"], ["-O2", "-O3 -march=skylake-avx512"])
    assert len(objs) == 2
    for obj in objs:
        _check(obj, 32)


def test_libcrypto_oddities() -> None:
    """libcrypto.so.3: windows around objdump's odd (bad)/prefix spellings (REX before an
    invalid VEX/EVEX/XOP escape, 66-only forms without 66, bnd4, cs+fs jcc hint)."""
    path = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"
    require_file(path)
    needles = [bytes.fromhex(h) for h in ("4e62d5bcdc24", "4e0f6d9568cc", "49c4f5d7fb",
                                          "4b8fcaf559", "0f1ba429ac7f3e02", "2e64785f",
                                          "674b8905e80398b6")]
    windows = _around(path, needles, 4000)
    assert len(windows) == len(needles)
    _check(path, 64, windows)


@pytest.mark.oracle("testdata")
@pytest.mark.parametrize("mode", [16, 32, 64])
@pytest.mark.parametrize("syntax", ["att", "intel"])
def test_testdata_corpora_ratchet(mode: int, syntax: str) -> None:
    """Every byte string of the iced/fadec/x86asm suites, each decoded on its own: the
    mismatches are exactly those listed (suite ``testdata``)."""
    os.environ.setdefault("TMPDIR", tempfile.gettempdir())
    tally = compare_snippets(snippets_by_mode()[mode], mode, syntax)
    assert tally.exceptions == 0, tally.examples
    assert_known("testdata", mode, syntax, tally.mismatches)


def _prefix_runs(count: int = 400, seed: int = 5) -> bytes:
    """Runs of 10-16 legacy/REX prefixes before random bytes: objdump's 14-prefix and
    15-byte limits."""
    rnd = random.Random(seed)
    prefixes = [0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x3E, 0x26, 0x64, 0x65, 0x36, 0xF0, 0x40, 0x48,
                0x41]
    return b"".join(bytes(rnd.choice(prefixes) for _ in range(rnd.randint(10, 16)))
                    + rnd.randbytes(6) for _ in range(count))


@pytest.mark.parametrize("mode", [16, 32, 64])
@pytest.mark.parametrize("syntax", ["att", "intel"])
def test_long_prefix_runs(mode: int, syntax: str) -> None:
    """At most 14 prefixes make an instruction, at most 15 bytes; the rest is (bad)."""
    n, wrong = code_mismatches(_prefix_runs(), 0, mode, syntax)
    assert n > 800
    assert_known("prefix-runs", mode, syntax, wrong)
