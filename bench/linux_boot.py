"""Seconds and instructions from power-on to the busybox prompt of the x86vm Linux guest on
the emu backend, with QEMU TCG booting the same files in the same run (issue 11, item 6).

The guest is the one scripts/build-linux-guest caches (docs/linux-guest.md): a kernel
(``bzImage`` by default, or the PVH ``vmlinux``) and its initramfs. The emu boot runs in
this process on a :class:`~x86vm.machine.vm.Machine` with the PC board, exactly what
``x86vm run --backend emu`` builds; a console watches the serial output and stops the run
when the shell's prompt (``/ # ``) appears, reading the instructions retired at that
moment. QEMU (``qemu-system-x86_64 -nographic``, TCG) boots the same kernel, initramfs and
command line; its figure is the wall time from process start to the same prompt.

Usage: ``python3 bench/linux_boot.py [--kernel bzImage|vmlinux] [--initrd NAME]
[--cmdline S] [--runs N] [--no-qemu]`` (from the repository root; under
``flock /tmp/x86vm-heavy.lock`` on a shared machine: the emu boot is minutes of CPU).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from x86vm.devices.console import BufferConsole  # noqa: E402
from x86vm.devices.pc import attach_pc_devices  # noqa: E402
from x86vm.machine.boot import detect_format, load_image  # noqa: E402
from x86vm.machine.vm import Machine  # noqa: E402

CACHE = Path(os.environ.get("X86VM_LINUX_CACHE") or os.environ.get("X86VM_LINUX_DIR")
             or Path.home() / ".cache" / "x86vm" / "linux")
PROMPT = b"\n/ # "
"""busybox ash's prompt for root at / (its default PS1 '\\w \\$ '), at the start of a line."""
CMDLINE = "console=ttyS0 panic=-1"
TARGET_SECONDS = 120.0


class PromptWatch(BufferConsole):
    """Collects the serial output; at the first prompt, notes the time and the emu's
    instruction count and ends the run."""

    def __init__(self) -> None:
        super().__init__()
        self.machine: Machine | None = None
        self.started = 0.0
        self.seconds: float | None = None
        self.instructions: int | None = None
        self.guest_ns: int | None = None

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.seconds is None and PROMPT in self.output[-len(PROMPT) - len(data):]:
            self.seconds = time.perf_counter() - self.started
            machine = self.machine
            if machine is not None:
                self.instructions = machine.backend.stats()["instructions"]
                self.guest_ns = machine.clock_ns()
                machine.request_stop(0, "prompt reached")


def boot_emu(kernel: Path, initrd: Path, cmdline: str, timeout: float) -> PromptWatch:
    image, ramdisk = kernel.read_bytes(), initrd.read_bytes()
    watch = PromptWatch()
    with Machine(memory_size=128 << 20, backend="emu") as machine:
        board = attach_pc_devices(machine, watch)
        try:
            entry = load_image(machine.memory, image, detect_format(image), cmdline=cmdline,
                               initrd=ramdisk, **board.boot_options())
            watch.machine = machine
            watch.started = time.perf_counter()
            result = machine.run(entry, timeout=timeout)
        finally:
            board.close()
    if watch.seconds is None:
        tail = bytes(watch.output[-2000:]).decode("latin-1")
        raise SystemExit(f"emu: no prompt ({result.reason}); last output:\n{tail}")
    return watch


def boot_qemu(kernel: Path, initrd: Path, cmdline: str, timeout: float) -> float | None:
    """Wall seconds from starting QEMU TCG to the prompt on its serial line."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return None
    command = [qemu, "-nographic", "-no-reboot", "-m", "128M", "-accel", "tcg",
               "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    seen, at = b"", None
    try:
        assert process.stdout is not None
        while chunk := process.stdout.read1(4096):
            seen = seen[-len(PROMPT):] + chunk
            if PROMPT in seen:
                at = time.perf_counter() - started
                break
    finally:
        killer.cancel()
        process.kill()
        process.wait()
    return at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", default="bzImage", help="file in the cache (default "
                        "bzImage; vmlinux boots through its PVH note)")
    parser.add_argument("--initrd", default="initramfs.cpio.gz", help="file in the cache")
    parser.add_argument("--cmdline", default=CMDLINE, help=f"default {CMDLINE!r}")
    parser.add_argument("--runs", type=int, default=1, help="QEMU boots (median printed)")
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--no-qemu", action="store_true")
    args = parser.parse_args()
    kernel, initrd = CACHE / args.kernel, CACHE / args.initrd
    for path in (kernel, initrd):
        if not path.is_file():
            raise SystemExit(f"{path} is missing: build it with scripts/build-linux-guest")

    print(f"Linux guest: {kernel.name} + {initrd.name}, cmdline {args.cmdline!r}")
    qemu_times = []
    if not args.no_qemu:
        qemu_times = [t for t in (boot_qemu(kernel, initrd, args.cmdline, 120.0)
                                  for _ in range(max(1, args.runs))) if t is not None]
    emu = boot_emu(kernel, initrd, args.cmdline, args.timeout)
    assert emu.seconds is not None and emu.instructions is not None
    mips = emu.instructions / emu.seconds / 1e6
    verdict = "within" if emu.seconds <= TARGET_SECONDS else "OVER"
    print(f"emu:      {emu.seconds:8.1f} s to the prompt, {emu.instructions:,} instructions "
          f"({mips:.2f} MIPS), guest time {emu.guest_ns / 1e9:.2f} s "
          f"[{verdict} the {TARGET_SECONDS:.0f} s target]")
    if qemu_times:
        qemu = statistics.median(qemu_times)
        print(f"QEMU TCG: {qemu:8.2f} s to the prompt (median of {len(qemu_times)}); "
              f"emu / QEMU = {emu.seconds / qemu:.0f}x")
    elif not args.no_qemu:
        print("QEMU TCG: not installed or no prompt within 120 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
