"""Coverage beyond python3.11/libc, against objdump 2.40: real code and other suites' bytes.

The issue's Must-show: at most 0.1 % text mismatches over real code it does not name (kernel
code with system instructions, 16- and 32-bit code, other binaries).  These are samples that
run in seconds; `python3 tests/isa_realcode.py` measures every input in full (numbers in
docs/isa.md).  Inputs that are absent (no cached kernel, no SeaBIOS, no gcc -m32) are skipped.
Expected text always comes from objdump on this machine.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile

import pytest

from isa_compare import compare, load_code
from isa_realcode import BUILD, LINUX, SEABIOS, build_code32, linux_source
from objdump_oracle import have_objdump
from oracle.compare import compare_snippets
from oracle.testdata import TESTDATA, snippets_by_mode

pytestmark = pytest.mark.skipif(not have_objdump(), reason="objdump (binutils) not installed")
MAX_SHARE = 0.001           # the issue: <= 0.1 % text mismatches over real code


def _check(path: str, mode: int, windows: list[tuple[int, int]] | None = None) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} not present")
    data, address = load_code(path)
    for start, size in windows or [(0, len(data))]:
        chunk = data[start:start + size]
        for intel in (False, True):
            n, length_bad, text_bad = compare(chunk, address + start, mode, intel, quiet=True)
            assert n > 0 and length_bad == 0, (path, start, intel, n, length_bad)
            assert text_bad <= n * MAX_SHARE, (path, start, intel, n, text_bad)


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
    if not os.path.exists(path):
        pytest.skip("no cached kernel (~/.cache/x86vm/linux/vmlinux)")
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
    if shutil.which("gcc") is None or linux_source() is None:
        pytest.skip("gcc or the cached kernel source is missing")
    objs = build_code32(["decompress_inflate"], ["-O2", "-O3 -march=skylake-avx512"])
    if not objs:
        pytest.skip("gcc -m32 cannot build here")
    for obj in objs:
        _check(obj, 32)


def test_libcrypto_oddities() -> None:
    """libcrypto.so.3: windows around objdump's odd (bad)/prefix spellings (REX before an
    invalid VEX/EVEX/XOP escape, 66-only forms without 66, bnd4, cs+fs jcc hint)."""
    path = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"
    if not os.path.exists(path):
        pytest.skip(f"{path} not present")
    needles = [bytes.fromhex(h) for h in ("4e62d5bcdc24", "4e0f6d9568cc", "49c4f5d7fb",
                                          "4b8fcaf559", "0f1ba429ac7f3e02", "2e64785f",
                                          "674b8905e80398b6")]
    windows = _around(path, needles, 4000)
    assert len(windows) == len(needles)
    _check(path, 64, windows)


# Mismatches left on the other disassemblers' test suites (../shared/testdata), measured by
# `scripts/disasm-corpus --only testdata`; lower them as coverage grows.
TESTDATA_ALLOWANCE = {(16, "att"): (0, 0), (16, "intel"): (0, 0), (32, "att"): (10, 3),
                      (32, "intel"): (10, 3), (64, "att"): (9, 3), (64, "intel"): (9, 3)}


@pytest.mark.skipif(not os.path.isdir(TESTDATA), reason="../shared/testdata not present")
@pytest.mark.parametrize("mode", [16, 32, 64])
@pytest.mark.parametrize("syntax", ["att", "intel"])
def test_testdata_corpora_ratchet(mode: int, syntax: str) -> None:
    """Every byte string of the iced/fadec/x86asm suites, each decoded on its own."""
    os.environ.setdefault("TMPDIR", tempfile.gettempdir())
    tally = compare_snippets(snippets_by_mode()[mode], mode, syntax)
    length_max, text_max = TESTDATA_ALLOWANCE[(mode, syntax)]
    assert tally.exceptions == 0
    assert tally.length_mismatches <= length_max, tally.summary()
    assert tally.text_mismatches <= text_max, tally.summary()


def _prefix_runs(count: int = 400, seed: int = 5) -> bytes:
    """Runs of 10-16 legacy/REX prefixes before random bytes: objdump's 14-prefix and
    15-byte limits."""
    rnd = random.Random(seed)
    prefixes = [0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x3E, 0x26, 0x64, 0x65, 0x36, 0xF0, 0x40, 0x48,
                0x41]
    return b"".join(bytes(rnd.choice(prefixes) for _ in range(rnd.randint(10, 16)))
                    + rnd.randbytes(6) for _ in range(count))


@pytest.mark.parametrize("mode", [16, 32, 64])
@pytest.mark.parametrize("intel", [False, True], ids=["att", "intel"])
def test_long_prefix_runs(mode: int, intel: bool) -> None:
    """At most 14 prefixes make an instruction, at most 15 bytes; the rest is (bad)."""
    n, length_bad, text_bad = compare(_prefix_runs(), 0, mode, intel, quiet=True)
    assert n > 800 and length_bad == 0 and text_bad <= 3, (n, length_bad, text_bad)
