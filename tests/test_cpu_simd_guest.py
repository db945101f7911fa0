"""A bare-metal long-mode guest built from C with -O3 -msse4.2 (glibc-style SSE2/SSE4.2
string functions, loops gcc vectorises, scalar double/float arithmetic: tests/guests/simd/)
runs on the emu backend and prints the checksums its twin prints natively on this host."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from guests import build as guest_build
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine.boot import load_image
from x86vm.machine.vm import Machine

SIMD_DIR = guest_build.GUEST_DIR / "simd"
SIMD_FLAGS = ["-O3", "-msse4.2", "-fno-math-errno"]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr}")


def build_guest(out: Path) -> bytes:
    """work.c with SSE (freestanding, no red zone); everything before SSE is enabled
    (the PVH entry, guest.c) with general registers only."""
    general = ["-m64", "-mno-red-zone", "-mgeneral-regs-only", *guest_build.CFLAGS]
    objs = []
    for src in ("long64/pvh_entry.S", "long64/common.S", "simd/guest.c"):
        obj = out / (src.replace("/", "_") + ".o")
        _run(["gcc", *general, "-I", str(guest_build.GUEST_DIR), "-c",
              str(guest_build.GUEST_DIR / src), "-o", str(obj)])
        objs.append(str(obj))
    work = out / "work.o"
    _run(["gcc", "-m64", "-mno-red-zone", *guest_build.CFLAGS, *SIMD_FLAGS, "-c",
          str(SIMD_DIR / "work.c"), "-o", str(work)])
    elf = out / "simd.elf"
    _run(["ld", "-m", "elf_x86_64", *guest_build.LDFLAGS, "-T",
          str(guest_build.GUEST_DIR / "long64/link.ld"), "-e", "pvh_start", "-o", str(elf),
          *objs, str(work)])
    return elf.read_bytes()


def host_output(out: Path) -> str:
    exe = out / "simd_host"
    _run(["gcc", *SIMD_FLAGS, "-o", str(exe), str(SIMD_DIR / "work.c"),
          str(SIMD_DIR / "host.c")])
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout


def test_simd_guest_matches_host(tmp_path):
    if shutil.which("gcc") is None or shutil.which("ld") is None:
        pytest.skip("gcc and ld are needed")
    with open("/proc/cpuinfo") as f:
        if "sse4_2" not in f.read():
            pytest.skip("the host CPU lacks SSE4.2")
    image = build_guest(tmp_path)
    expected = host_output(tmp_path)
    console = BufferConsole()
    with Machine(memory_size=16 << 20, backend="emu") as m:
        attach_pc_devices(m, console, debug_exit_port=0xF4)
        entry = load_image(m.memory, image, "pvh", cmdline="")
        result = m.run(entry, timeout=300)
        stats = m.backend.stats()
    assert result.status == 1, result.reason
    assert stats["undefined"] == 0
    assert bytes(console.output).decode("latin-1") == expected
