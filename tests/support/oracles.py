"""The external oracles and inputs the tests use, how to tell whether each is present, and what
a test does when one is missing.

Every "oracle missing" skip in the suite goes through :func:`require` (or the ``oracle``
mark, which calls it before the test runs). By default a missing oracle skips the test, with
its name and how to get it. ``X86VM_REQUIRE`` (a comma list of the names below, or ``all``)
turns the skip into a failure naming the oracle: a job that installed QEMU cannot pass
green with every QEMU test skipped. Presence is decided here, never by the code under test
(KVM: raw ioctls in :mod:`support.kvm_probe`, not x86vm's ``Kvm``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from oracle.testdata import TESTDATA
from support.kvm_probe import kvm_unusable_reason

REQUIRE_ENV = "X86VM_REQUIRE"
OBJDUMP_VERSION = "2.40"
SEABIOS = Path("/usr/share/seabios/bios.bin")
PYTHON311 = Path("/usr/bin/python3.11")
LIBC = Path("/usr/lib/x86_64-linux-gnu/libc.so.6")
LIBCRYPTO = Path("/usr/lib/x86_64-linux-gnu/libcrypto.so.3")
LINUX_CACHE = Path(os.environ.get("X86VM_LINUX_CACHE") or os.environ.get("X86VM_LINUX_DIR")
                   or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                   / "x86vm" / "linux")
#: what scripts/build-linux-guest leaves in its cache (the tests read all of these)
LINUX_PRODUCTS = ("bzImage", "vmlinux", "config", "initramfs.cpio", "initramfs.cpio.gz",
                  "build/arch/x86/boot/setup.elf")


@functools.cache
def objdump_version_line() -> str | None:
    """The first line of ``objdump --version`` (None without objdump): part of every objdump
    cache key, so a cache filled by another binutils is never read back."""
    path = shutil.which("objdump")
    if path is None:
        return None
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].strip() if out else None


def _objdump() -> str | None:
    line = objdump_version_line()
    if line is None:
        return "objdump is not installed"
    if line.split()[-1] != OBJDUMP_VERSION:
        return f"objdump is {line!r}, the expected texts are those of {OBJDUMP_VERSION}"
    return None


def _programs(*names: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        absent = [n for n in names if shutil.which(n) is None]
        return f"{', '.join(absent)} not on PATH" if absent else None
    return probe


def _files(*paths: Path) -> Callable[[], str | None]:
    def probe() -> str | None:
        absent = [str(p) for p in paths if not p.exists()]
        return f"{', '.join(absent)} missing" if absent else None
    return probe


def _gcc_m32() -> str | None:
    if shutil.which("gcc") is None:
        return "gcc is not installed"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "t.c")
        src.write_text("#include <stdint.h>\nint main(void) { return (int)sizeof(uint64_t); }\n")
        done = subprocess.run(["gcc", "-m32", str(src), "-o", str(Path(tmp, "t"))],
                              capture_output=True, text=True)
    return None if done.returncode == 0 else f"gcc -m32 cannot build: {done.stderr[-200:]}"


def _linux_guest() -> str | None:
    absent = [name for name in LINUX_PRODUCTS if not (LINUX_CACHE / name).is_file()]
    if not list((LINUX_CACHE / "src").glob("linux-*")):
        absent.append("src/linux-*")
    return f"{', '.join(absent)} missing in {LINUX_CACHE}" if absent else None


TEST386 = Path(os.environ.get("X86VM_TEST386", Path.home() / "src" / "test386.asm"))


def _test386() -> str | None:
    if not (TEST386 / "src" / "test386.asm").is_file():
        return f"no test386.asm checkout at {TEST386} (set X86VM_TEST386)"
    return None if shutil.which("nasm") else "nasm is not installed"


def _testdata() -> str | None:
    return None if TESTDATA.is_dir() else f"{TESTDATA} is not a directory"


@dataclass(frozen=True)
class Oracle:
    name: str
    probe: Callable[[], str | None]
    how: str


ORACLES: dict[str, Oracle] = {o.name: o for o in [
    Oracle("kvm", kvm_unusable_reason, "a host whose /dev/kvm can create a VM"),
    Oracle("qemu", _programs("qemu-system-x86_64"), "apt-get install qemu-system-x86"),
    Oracle("seabios", _files(SEABIOS), "apt-get install seabios (comes with qemu-system-x86)"),
    Oracle(f"objdump-{OBJDUMP_VERSION}", _objdump, "Debian 12: apt-get install binutils"),
    Oracle("binutils", _programs("as", "ld", "objcopy", "readelf"), "apt-get install binutils"),
    Oracle("gcc", _programs("gcc"), "apt-get install gcc"),
    Oracle("iasl", _programs("iasl"), "apt-get install acpica-tools"),
    Oracle("cpio", _programs("cpio"), "apt-get install cpio"),
    Oracle("e2fsprogs", _programs("mke2fs", "debugfs", "dumpe2fs", "e2fsck"),
           "apt-get install e2fsprogs"),
    Oracle("test386", _test386, "git clone https://github.com/barotto/test386.asm; "
           "X86VM_TEST386=that directory; apt-get install nasm"),
    Oracle("gcc-m32", _gcc_m32, "apt-get install gcc-multilib"),
    Oracle("testdata", _testdata, "the instruction corpora (set X86VM_TESTDATA)"),
    Oracle("linux-guest", _linux_guest, "run scripts/build-linux-guest"),
    Oracle("python3.11", _files(PYTHON311), "apt-get install python3.11 (Debian 12's python3)"),
    Oracle("libc", _files(LIBC), "Debian's libc6 (amd64)"),
    Oracle("libcrypto", _files(LIBCRYPTO), "apt-get install libssl3"),
]}


def required() -> frozenset[str]:
    """The oracles ``X86VM_REQUIRE`` names (``all``: every one); unknown names are an error."""
    names = {n.strip() for n in os.environ.get(REQUIRE_ENV, "").split(",") if n.strip()}
    if "all" in names:
        return frozenset(ORACLES)
    unknown = names - set(ORACLES)
    if unknown:
        raise pytest.UsageError(f"{REQUIRE_ENV}: unknown oracle(s) {', '.join(sorted(unknown))}"
                                f"; known: {', '.join(ORACLES)}, all")
    return frozenset(names)


@functools.cache
def absent_reason(name: str) -> str | None:
    """None when oracle ``name`` is present here, else why it is not (probed once)."""
    return ORACLES[name].probe()


def missing(name: str, why: str) -> NoReturn:
    """The one exit of a test whose oracle ``name`` is missing: a skip, or a failure naming
    the oracle when ``X86VM_REQUIRE`` asks for it."""
    oracle = ORACLES[name]
    message = f"oracle {name!r} missing: {why} ({oracle.how})"
    if name in required():
        pytest.fail(f"{REQUIRE_ENV} requires it: {message}", pytrace=False)
    # reported at the test (as a skipif mark is), not at this line
    raise pytest.skip.Exception(message, allow_module_level=True, _use_item_location=True)


def require(*names: str) -> None:
    """Skip (or fail, see :func:`missing`) unless every named oracle is present."""
    for name in names:
        if name not in ORACLES:
            raise KeyError(f"unknown oracle {name!r}")
        reason = absent_reason(name)
        if reason is not None:
            missing(name, reason)


def present(name: str) -> bool:
    return absent_reason(name) is None


def _oracle_of_file(path: Path) -> str | None:
    if path.is_relative_to(LINUX_CACHE) or path.is_relative_to(
            Path(os.path.expanduser("~/.cache/x86vm/linux"))):
        return "linux-guest"
    if path.is_relative_to(TESTDATA):
        return "testdata"
    return {SEABIOS: "seabios", PYTHON311: "python3.11", LIBC: "libc",
            LIBCRYPTO: "libcrypto"}.get(path)


def require_file(path: str | os.PathLike) -> None:
    """A test input from one of the oracles above (a cached kernel file, SeaBIOS, a host
    library): skip or fail naming that oracle when the file is missing."""
    path = Path(path)
    if path.exists():
        return
    name = _oracle_of_file(path)
    if name is None:
        raise FileNotFoundError(f"{path}: a test input no oracle provides")
    missing(name, f"{path} missing")
