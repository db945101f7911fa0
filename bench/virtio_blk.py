"""virtio-blk throughput inside the guest: x86vm beside QEMU's virtio-blk, same image.

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

``--guest bare`` runs the same four phases from a bare-metal firmware instead of Linux (see
"the bare-metal guest" below): no block layer, no O_DIRECT, one request in flight, polled —
the device path alone, and the one guest that runs on this machine's KVM.

Usage: ``python3 bench/virtio_blk.py [--backend emu|kvm|both] [--guest linux|bare|both]
[--seq-mib N] [--rand-ops N]`` from the repository root, through the heavy-job runner on a
shared machine.
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
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]  # this tree, not an installed x86vm

from support.initramfs import guest_initramfs, static_program  # noqa: E402
from support.virtio_guest import (  # noqa: E402
    blk_driver_setup,
    find_blk_window,
    flat_gdt,
    unreal_mode,
    window_table,
    xorshift32,
)

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
                            stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
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
        guest = (f"{figure(name, ours[name][3] / 1e9, ours[name][1], ours[name][2]):>17.2f}"
                 if ours[name][3] else f"{'-':>17}")  # the bare guest keeps no clock
        print(f"{name:<11} {unit:<5} {a:>10.2f} {b:>10.2f} {a / b:>7.3f}   {guest}")


def run_pair(backend: str, guest: str, work: Path, boot: Path, size_mib: int,
             timeout: float) -> None:
    """x86vm on ``backend`` and QEMU with the matching accelerator, each on a fresh sparse
    image of ``size_mib``, running ``guest`` (linux: ``boot`` is the initramfs; bare: the
    firmware)."""
    accel = "tcg" if backend == "emu" else "kvm"
    makers = {"linux": (x86vm_cmd, qemu_cmd), "bare": (x86vm_bare_cmd, qemu_bare_cmd)}[guest]
    results = {}
    for who, make in zip(("x86vm", "qemu"), makers, strict=True):
        image = work / f"{backend}-{guest}-{who}.img"
        image.unlink(missing_ok=True)
        with open(image, "wb") as f:
            f.truncate(size_mib << 20)
        print(f"[{backend}/{guest}] {who}: booting ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        results[who] = timed_phases(make(backend if who == "x86vm" else accel, boot, image),
                                    timeout)
        print(f"[{backend}/{guest}] {who}: done in {time.monotonic() - t0:.1f} s",
              file=sys.stderr)
        image.unlink()
    report(f"{backend}, {guest} guest", results["x86vm"], results["qemu"], f"QEMU-{accel}")


# -- the bare-metal guest ------------------------------------------------------------------
# The same four phases without Linux, for the backends whose KVM cannot run Linux's user
# space: a 64 KiB firmware started from the reset vector (x86vm ``--bios``, QEMU microvm
# ``-bios``), real mode with a flat FS ("unreal mode"). It finds the virtio-blk window
# (x86vm: 0xd0000000; QEMU microvm: one of 0xfeb00000 + 0x200 * i), negotiates VERSION_1 +
# FLUSH, sets up queue 0 with 8 entries and sends one request at a time (header, data,
# status: three descriptors), kicking QueueNotify and polling the used index (QEMU
# completes asynchronously; x86vm before the kick's MMIO write returns). Phase lines go to
# COM1 in the format blkbench.c prints, with the byte and request counts filled in here.

BARE_WINDOWS = [0xD000_0000] + [0xFEB0_0000 + 0x200 * i for i in range(24)]
BARE_DESC, BARE_AVAIL, BARE_USED, BARE_VARS = 0x1000, 0x2000, 0x3000, 0x5000
BARE_HEADER, BARE_STATUS, BARE_DATA = 0x4000, 0x4100, 0x10_0000
SEQ_REQUEST = 64 << 10


def bare_source(seq_mib: int, rand_ops: int, image_mib: int) -> str:
    """GNU as source of the firmware (linked at 0, the top 64 KiB below 1 MiB and 4 GiB)."""
    seq_ops = (seq_mib << 20) // SEQ_REQUEST
    blocks = (image_mib << 20) // 4096
    assert blocks & (blocks - 1) == 0, "the image must be a power of two of 4 KiB blocks"

    def line(name: str, event: str, size: int = 0, ops: int = 0) -> str:
        tail = f" bytes={size} ops={ops} guest_ns=0" if event == "end" else ""
        return f'.asciz "BENCH {name} {event}{tail}\\n"'

    def phase(name: str, rtype: int, random: bool, size: int, ops: int, flush: bool) -> str:
        label = name.replace("-", "_")
        sector = (f"call rand\n    and ${blocks - 1:#x}, %eax\n    shl $3, %eax\n"
                  "    mov %eax, %edx" if random else
                  f"mov %ebp, %edx\n    imul ${size // 512}, %edx")
        return f"""
    mov $msg_{label}_start, %si
    call puts
    xor %ebp, %ebp
{label}_loop:
    {sector}
    mov ${rtype}, %eax
    mov ${size}, %ecx
    mov ${2 if rtype == 0 else 0}, %edi
    call request
    inc %ebp
    cmp ${ops}, %ebp
    jb {label}_loop
    {"call flush" if flush else ""}
    mov $msg_{label}_end, %si
    call puts
"""
    phases = [("seq-read", 0, False, SEQ_REQUEST, seq_ops, False),
              ("seq-write", 1, False, SEQ_REQUEST, seq_ops, True),
              ("rand-read", 0, True, 4096, rand_ops, False),
              ("rand-write", 1, True, 4096, rand_ops, True)]
    body = "".join(phase(*p) for p in phases)
    messages = "\n".join(
        f"msg_{n.replace('-', '_')}_start: {line(n, 'start')}\n"
        f"msg_{n.replace('-', '_')}_end: {line(n, 'end', size * ops, ops)}"
        for n, _t, _r, size, ops, _f in phases)
    d, a, u, v = BARE_DESC, BARE_AVAIL, BARE_USED, BARE_VARS
    return f"""
start:
    cli
    xor %ax, %ax
    mov %ax, %ss
    mov $0x7000, %sp
{unreal_mode('fs')}
2:  mov %cs, %ax                    # DS = CS: the messages live in the ROM
    mov %ax, %ds
{find_blk_window(BARE_WINDOWS)}
found:
{blk_driver_setup(d, a, u)}
    movw $0, %fs:{a + 2:#x}
    movw $0, %fs:{v:#x}             # our avail idx
    movl $0x2545f491, %fs:{v + 4:#x}  # xorshift32 seed
{body}
    mov $msg_done, %si
    call puts
    mov $0, %al
    out %al, $0xf4
fail:
    mov $msg_failed, %si
    call puts
    mov $0x7e, %al
    out %al, $0xf4

flush:
    mov $4, %eax
    xor %edx, %edx
    xor %ecx, %ecx
request:                            # eax type, edx sector, ecx data bytes, edi 2 if IN
    movl %eax, %fs:{BARE_HEADER:#x}
    movl $0, %fs:{BARE_HEADER + 4:#x}
    movl %edx, %fs:{BARE_HEADER + 8:#x}
    movl $0, %fs:{BARE_HEADER + 12:#x}
    movb $0xff, %fs:{BARE_STATUS:#x}
    movl ${BARE_HEADER:#x}, %fs:{d:#x}
    movl $0, %fs:{d + 4:#x}
    movl $16, %fs:{d + 8:#x}
    movw $1, %fs:{d + 12:#x}        # NEXT
    movw $1, %fs:{d + 14:#x}
    movl ${BARE_DATA:#x}, %fs:{d + 16:#x}
    movl $0, %fs:{d + 20:#x}
    movl %ecx, %fs:{d + 24:#x}
    or $1, %di
    movw %di, %fs:{d + 28:#x}       # NEXT, WRITE for IN
    movw $2, %fs:{d + 30:#x}
    movl ${BARE_STATUS:#x}, %fs:{d + 32:#x}
    movl $0, %fs:{d + 36:#x}
    movl $1, %fs:{d + 40:#x}
    movw $2, %fs:{d + 44:#x}        # WRITE
    movw $0, %fs:{d + 46:#x}
    test %ecx, %ecx
    jnz 5f
    movw $2, %fs:{d + 14:#x}        # no data: header -> status
5:  movzwl %fs:{v:#x}, %eax
    mov %eax, %esi
    and $7, %esi
    shl $1, %esi
    movw $0, %fs:{a + 4:#x}(%esi)
    inc %eax
    movw %ax, %fs:{v:#x}
    movw %ax, %fs:{a + 2:#x}
    movl $0, %fs:0x050(%ebx)        # QueueNotify: the kick
6:  cmpw %fs:{u + 2:#x}, %ax        # poll the used index
    jne 6b
    cmpb $0, %fs:{BARE_STATUS:#x}
    jne fail
    ret

{xorshift32(f'%fs:{v + 4:#x}')}

puts:                               # DS:SI, NUL-terminated, to COM1
    lodsb
    test %al, %al
    jz 8f
    mov %al, %ah
    mov $0x3fd, %dx
7:  in %dx, %al                     # wait for THRE
    test $0x20, %al
    jz 7b
    mov %ah, %al
    mov $0x3f8, %dx
    out %al, %dx
    jmp puts
8:  ret

{messages}
msg_done: .asciz "BENCH done\\n"
msg_failed: .asciz "BENCH failed\\n"
    # the descriptor is accessed already: loading FS must not write the ROM
{flat_gdt(0xf0000, accessed=True)}
{window_table(BARE_WINDOWS)}
    .org 0xfff0
    ljmp $0xf000, $start
    .org 0x10000
"""


def build_firmware(work: Path, seq_mib: int, rand_ops: int, image_mib: int) -> Path:
    from test_kvm_support import assemble

    out = work / "blkbench.rom"
    out.write_bytes(assemble(bare_source(seq_mib, rand_ops, image_mib), 0))
    return out


def x86vm_bare_cmd(backend: str, rom: Path, image: Path) -> list[str]:
    return [sys.executable, "-m", "x86vm", "run", "--backend", backend, "-m", "128M",
            "--bios", str(rom), "--drive", f"file={image},format=raw,cache=writeback"]


def qemu_bare_cmd(accel: str, rom: Path, image: Path) -> list[str]:
    return ["qemu-system-x86_64", "-M", "microvm", "-accel", accel, "-m", "128M",
            "-bios", str(rom), "-display", "none", "-serial", "stdio", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1",
            "-global", "virtio-mmio.force-legacy=false",
            "-drive", f"if=none,id=d0,file={image},format=raw,cache=writeback",
            "-device", "virtio-blk-device,drive=d0"]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("emu", "kvm", "both"), default="emu")
    ap.add_argument("--guest", choices=("linux", "bare", "both"), default="linux",
                    help="Linux with blkbench.c, or the bare-metal firmware (default linux)")
    ap.add_argument("--seq-mib", type=int,
                    help="MiB per sequential phase (default: linux 4, bare 256)")
    ap.add_argument("--rand-ops", type=int,
                    help="requests per random phase (default: linux 128, bare 16384)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per VMM run")
    args = ap.parse_args(argv)
    guests = ("linux", "bare") if args.guest == "both" else (args.guest,)
    for tool in ("gcc", "as", "ld", "qemu-system-x86_64"):
        if not shutil.which(tool):
            print(f"virtio_blk: {tool} is not installed", file=sys.stderr)
            return 2
    if "linux" in guests and not (LINUX_DIR / "bzImage").is_file():
        print(f"virtio_blk: no Linux guest in {LINUX_DIR} (scripts/build-linux-guest)",
              file=sys.stderr)
        return 2
    backends = ("emu", "kvm") if args.backend == "both" else (args.backend,)
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for guest in guests:
            seq_mib = args.seq_mib or {"linux": 4, "bare": 256}[guest]
            rand_ops = args.rand_ops or {"linux": 128, "bare": 16384}[guest]
            size_mib = 1 << max(4, (2 * seq_mib - 1).bit_length())  # a power of two >= 16
            boot = (build_initramfs(work, seq_mib, rand_ops) if guest == "linux" else
                    build_firmware(work, seq_mib, rand_ops, size_mib))
            print(f"\n{guest} guest: {seq_mib} MiB per sequential phase in 64 KiB requests, "
                  f"{rand_ops} random 4 KiB requests per random phase, {size_mib} MiB image")
            for backend in backends:
                try:
                    run_pair(backend, guest, work, boot, size_mib, args.timeout)
                except RuntimeError as e:
                    print(f"\n{backend}, {guest} guest: no figures — {e}")
                    status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
