"""virtio-blk throughput inside the Linux guest: x86vm beside QEMU's virtio-blk, same image.

The cached Linux guest (scripts/build-linux-guest) boots with a second initramfs archive
holding bench/blkbench.c (gcc -static) and a /bench-init that runs it on /dev/vda and
resets the machine. blkbench reads and writes the raw disk with O_DIRECT: sequential 64 KiB
requests, then random 4 KiB ones, each write phase ending with fdatasync (a FLUSH). It prints
a line before and after each phase; this script timestamps those lines as they arrive on the
serial console, so MB/s and IOPS are host wall-clock figures for both VMMs (the guest's own
clock is virtual on emu), printed with the guest-clock figure beside them.

Pairs, each in the same run, on a fresh sparse image of the same size:
  emu  — x86vm --backend emu   beside QEMU TCG (-M microvm, virtio-mmio)
  kvm  — x86vm --backend kvm   beside QEMU -accel kvm   (where KVM runs the guest's user
         space: this machine's software KVM stops Linux at its first system call,
         docs/linux-guest.md, and the pair then prints why it has no figures)

Usage: ``python3 bench/virtio_blk.py [--backend emu|kvm|both] [--seq-mib N] [--rand-ops N]``
from the repository root, under ``flock /tmp/x86vm-heavy.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.initramfs import guest_initramfs, static_program  # noqa: E402

LINUX_DIR = Path(os.environ.get("X86VM_LINUX_DIR", Path.home() / ".cache/x86vm/linux"))
PHASES = ("seq-read", "seq-write", "rand-read", "rand-write")
LINE = re.compile(rb"BENCH (?:(\S+) )?(start|end|failed|done)"
                  rb"(?: bytes=(\d+) ops=(\d+) guest_ns=(\d+))?")
CMDLINE = "console=ttyS0 rdinit=/x86vm-init panic=-1"
# what this repository's software KVM needs to get Linux far (docs/linux-guest.md)
KVM_WORKAROUNDS = " noxsave clearcpuid=308,151"


def build_initramfs(work: Path, seq_mib: int, rand_ops: int) -> Path:
    """The cached busybox initramfs followed by an archive with blkbench and the init."""
    blkbench = static_program(ROOT / "bench/blkbench.c", work / "blkbench")
    script = ("#!/bin/sh\nmount -t devtmpfs devtmpfs /dev 2>/dev/null\n"
              f"/bin/blkbench {seq_mib} {rand_ops}\nreboot -f\n")
    out = work / "initramfs-bench.cpio"
    out.write_bytes(guest_initramfs(LINUX_DIR / "initramfs.cpio", script,
                                    {"bin/blkbench": blkbench}))
    return out


def timed_phases(cmd: list[str], timeout: float) -> dict[str, tuple[float, int, int, int]]:
    """Run ``cmd``; per phase: (wall seconds, bytes, ops, guest ns), from the serial lines."""
    starts: dict[str, float] = {}
    results: dict[str, tuple[float, int, int, int]] = {}
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    tail: list[bytes] = []
    try:
        for line in proc.stdout:
            now = time.monotonic()
            tail = (tail + [line])[-15:]
            m = LINE.search(line)
            if m and m[2] == b"start":
                starts[m[1].decode()] = now
            elif m and m[2] == b"end":
                name = m[1].decode()
                results[name] = (now - starts[name], int(m[3]), int(m[4]), int(m[5]))
            elif m and m[2] in (b"failed", b"done"):
                if m[2] == b"failed":
                    raise RuntimeError(f"{cmd[0]}: {line.decode(errors='replace').strip()}")
                break
            if now > deadline:
                raise RuntimeError(f"{cmd[0]}: no result within {timeout:.0f} s")
    finally:
        proc.kill()
        proc.wait()
    if len(results) != len(PHASES):
        text = b"".join(tail).decode(errors="replace")
        raise RuntimeError(f"{cmd[0]} ended before the benchmark finished:\n{text}")
    return results


def x86vm_cmd(backend: str, initrd: Path, image: Path) -> list[str]:
    return [sys.executable, "-m", "x86vm", "run", "--backend", backend, "-m", "128M",
            "--initrd", str(initrd),
            "--cmdline", CMDLINE + (KVM_WORKAROUNDS if backend == "kvm" else ""),
            "--drive", f"file={image},format=raw,cache=writeback", str(LINUX_DIR / "bzImage")]


def qemu_cmd(accel: str, initrd: Path, image: Path) -> list[str]:
    return ["qemu-system-x86_64", "-M", "microvm,acpi=off", "-accel", accel, "-m", "128M",
            "-nographic", "-no-reboot", "-kernel", str(LINUX_DIR / "bzImage"),
            "-initrd", str(initrd), "-append", CMDLINE,
            "-drive", f"if=none,id=d0,file={image},format=raw,cache=writeback",
            "-device", "virtio-blk-device,drive=d0"]


def figure(name: str, wall: float, size: int, ops: int) -> float:
    """MB/s for the sequential phases, IOPS for the random ones."""
    return size / wall / 1e6 if name.startswith("seq") else ops / wall


def report(pair: str, ours: dict, theirs: dict, anchor: str) -> None:
    print(f"\n{pair}: x86vm beside {anchor}")
    print(f"{'phase':<11} {'unit':<5} {'x86vm':>10} {anchor:>10} {'ratio':>7}   "
          f"{'x86vm guest-clock':>17}")
    for name in PHASES:
        unit = "MB/s" if name.startswith("seq") else "IOPS"
        a = figure(name, ours[name][0], ours[name][1], ours[name][2])
        b = figure(name, theirs[name][0], theirs[name][1], theirs[name][2])
        guest = figure(name, ours[name][3] / 1e9, ours[name][1], ours[name][2])
        print(f"{name:<11} {unit:<5} {a:>10.2f} {b:>10.2f} {a / b:>7.3f}   {guest:>17.2f}")


def run_pair(backend: str, work: Path, initrd: Path, size_mib: int, timeout: float) -> None:
    accel = "tcg" if backend == "emu" else "kvm"
    results = {}
    for who, make in (("x86vm", x86vm_cmd), ("qemu", qemu_cmd)):
        image = work / f"{backend}-{who}.img"
        image.unlink(missing_ok=True)
        with open(image, "wb") as f:
            f.truncate(size_mib << 20)
        print(f"[{backend}] {who}: booting ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        results[who] = timed_phases(make(backend if who == "x86vm" else accel, initrd, image),
                                    timeout)
        print(f"[{backend}] {who}: done in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    report(backend, results["x86vm"], results["qemu"], f"QEMU-{accel}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("emu", "kvm", "both"), default="emu")
    ap.add_argument("--seq-mib", type=int, default=4, help="MiB per sequential phase")
    ap.add_argument("--rand-ops", type=int, default=128, help="requests per random phase")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per VMM run")
    args = ap.parse_args(argv)
    for tool in ("gcc", "qemu-system-x86_64"):
        if not shutil.which(tool):
            print(f"virtio_blk: {tool} is not installed", file=sys.stderr)
            return 2
    if not (LINUX_DIR / "bzImage").is_file():
        print(f"virtio_blk: no Linux guest in {LINUX_DIR} (scripts/build-linux-guest)",
              file=sys.stderr)
        return 2
    backends = ("emu", "kvm") if args.backend == "both" else (args.backend,)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        initrd = build_initramfs(work, args.seq_mib, args.rand_ops)
        size_mib = max(16, 2 * args.seq_mib)
        status = 0
        for backend in backends:
            try:
                run_pair(backend, work, initrd, size_mib, args.timeout)
            except RuntimeError as e:
                print(f"\n{backend}: no figures — {e}")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
