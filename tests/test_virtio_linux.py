"""Linux's own virtio drivers as the oracle: the cached x86vm Linux guest (scripts/
build-linux-guest: VIRTIO_MMIO, VIRTIO_MMIO_CMDLINE_DEVICES, VIRTIO_BLK, MSDOS_PARTITION)
boots on KVM with a disk whose sector 0 holds an MBR made here. The kernel's virtio_mmio
driver must find both devices from ``virtio_mmio.device=``, virtio_blk must report the
capacity, and the partition scan — IN requests through the ring, completed by IRQ — must
print the two partitions. Slow (~15 s on the software KVM); skipped without the kernel.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from support import oracles
from support.initramfs import guest_initramfs
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.devices.virtio import DriveSpec, attach_virtio, cmdline_fragment
from x86vm.machine.boot import load_image
from x86vm.machine.vm import Machine

pytestmark = [pytest.mark.slow, pytest.mark.kvm]
LINUX_DIR = Path(os.environ.get("X86VM_LINUX_DIR", Path.home() / ".cache/x86vm/linux"))
# the kvm_pvm workarounds of docs/linux-guest.md; harmless elsewhere
CMDLINE = "console=ttyS0 panic=-1 noxsave clearcpuid=308,151"
SECTORS = 8192
EXT2_OPTIONS = ("CONFIG_EXT2_FS=y", "CONFIG_HW_RANDOM_VIRTIO=y")


def kernel_with(options: tuple[str, ...]) -> Path:
    """A vmlinux whose config has ``options``: ``$X86VM_VIRTIO_LINUX`` (a vmlinux in a
    kernel build directory), else the cached guest kernel; skip, naming them, if none has."""
    candidates = [Path(p) for p in (os.environ.get("X86VM_VIRTIO_LINUX"),) if p]
    candidates.append(LINUX_DIR / "vmlinux")
    for vmlinux in candidates:
        for config in (vmlinux.parent / "config", vmlinux.parent / ".config"):
            if vmlinux.is_file() and config.is_file():
                lines = set(config.read_text().splitlines())
                if all(o in lines for o in options):
                    return vmlinux
    pytest.skip(f"no vmlinux built with {', '.join(options)} (add them to "
                "scripts/linux-guest.config, or point X86VM_VIRTIO_LINUX at one)")


def mbr(partitions: list[tuple[int, int, int]]) -> bytes:
    """A classic MBR: (type, first LBA, sectors) per entry, boot signature 55 aa."""
    table = b"".join(struct.pack("<B3sB3sII", 0, b"\0\0\0", ptype, b"\0\0\0", lba, count)
                     for ptype, lba, count in partitions)
    return bytes(446) + table.ljust(64, b"\0") + b"\x55\xaa"


class StopAfter(BufferConsole):
    def __init__(self, request_stop, pattern: bytes) -> None:
        super().__init__()
        self.request_stop, self.pattern = request_stop, re.compile(pattern)

    def write(self, data: bytes) -> None:
        super().write(data)
        if b"\n" in data and self.pattern.search(self.output):
            self.request_stop(0, "test: marker seen")


def test_linux_finds_the_disk_and_reads_its_partition_table(tmp_path):
    oracles.require("linux-guest")
    vmlinux = LINUX_DIR / "vmlinux"
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(SECTORS * 512)
        f.write(mbr([(0x83, 2048, 2048), (0x83, 4096, 4096)]))
    m = Machine(memory_size=128 << 20, backend="kvm")
    attached = []
    try:
        console = StopAfter(m.request_stop, rb" vda: vda1 vda2\r?\n")
        attach_pc_devices(m, console, debug_exit_port=0xF4)
        attached = attach_virtio(m, [DriveSpec(str(image), readonly=True)], rng=True)
        cmdline = f"{CMDLINE} {cmdline_fragment(attached)}"
        entry = load_image(m.memory, vmlinux.read_bytes(), "pvh", cmdline=cmdline)
        result = m.run(entry, timeout=180)
        serial = bytes(console.output).decode("latin-1")
        blk = attached[0].transport
        assert "marker seen" in result.reason, (result, serial[-3000:])
        assert ("virtio-mmio: Registering device virtio-mmio.0 at 0xd0000000-0xd00001ff, "
                "IRQ 5.") in serial
        assert ("virtio-mmio: Registering device virtio-mmio.1 at 0xd0000200-0xd00003ff, "
                "IRQ 9.") in serial
        assert f"virtio_blk virtio0: [vda] {SECTORS} 512-byte logical blocks" in serial
        assert blk.device.requests.get(0, 0) >= 1  # the partition scan's reads
        assert blk.interrupts >= 1  # the completion came by IRQ 5 (else the scan hangs)
        print(f"\nrequests {blk.device.requests}, kicks {blk.notifications}, "
              f"interrupts {blk.interrupts}, exits {result.exits}")
        assert dict(blk.errors) == {}
        assert dict(attached[1].transport.errors) == {}  # no rng driver: only probed
    finally:
        for a in attached:
            a.transport.close()
        m.close()


def dumpe2fs(image: Path) -> dict[str, str]:
    out = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True,
                         check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in
                                                   out.splitlines()) if v}


def test_linux_mounts_an_ext2_root_and_its_writes_reach_the_image(tmp_path):
    """Made on the host with mke2fs, mounted read-write by the guest kernel as its root
    (ext2 bumps the mount count and marks the file system in use in its superblock, a
    synchronous write), read back on the host with dumpe2fs and debugfs. No user space is
    needed (kvm_pvm cannot run it); the kernel then panics for want of an init and resets."""
    vmlinux = kernel_with(EXT2_OPTIONS)
    oracles.require("e2fsprogs")
    image = tmp_path / "root.ext2"
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"written on the host\n")
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", str(image), "8M"],
                   check=True)
    subprocess.run(["debugfs", "-w", "-R", f"write {hello} hello.txt", str(image)],
                   check=True, capture_output=True)
    before = dumpe2fs(image)
    assert before["Mount count"] == "0" and before["Filesystem state"] == "clean"

    m = Machine(memory_size=128 << 20, backend="kvm")
    attached = []
    try:
        console = StopAfter(m.request_stop, rb"No working init found")
        attach_pc_devices(m, console, debug_exit_port=0xF4)
        attached = attach_virtio(m, [DriveSpec(str(image), cache="none")], rng=True)
        cmdline = f"{CMDLINE} root=/dev/vda rw {cmdline_fragment(attached)}"
        entry = load_image(m.memory, vmlinux.read_bytes(), "pvh", cmdline=cmdline)
        result = m.run(entry, timeout=300)
        serial = bytes(console.output).decode("latin-1")
        blk, rng = attached[0].transport, attached[1].transport
        print(f"\nblk requests {blk.device.requests}, kicks {blk.notifications}, "
              f"interrupts {blk.interrupts}; rng bytes {rng.device.bytes_supplied}; "
              f"exits {result.exits}; {result.reason}")
        assert "VFS: Mounted root (ext2 filesystem) on device" in serial, \
            serial[-3000:]
        assert blk.device.requests.get(1, 0) >= 1  # the superblock write
        assert dict(blk.errors) == {} and dict(rng.errors) == {}
        assert rng.device.bytes_supplied > 0  # virtio-rng: hwrng's early randomness
    finally:
        for a in attached:
            a.transport.close()
        m.close()
    after = dumpe2fs(image)
    assert after["Mount count"] == "1"
    assert after["Filesystem state"] == "not clean"  # mounted rw, never unmounted
    cat = subprocess.run(["debugfs", "-R", "cat hello.txt", str(image)], capture_output=True,
                         check=True)
    assert cat.stdout == b"written on the host\n"


def test_x86vm_run_tells_linux_where_the_devices_are(tmp_path):
    """``x86vm run vmlinux --drive … --virtio-rng`` appends one virtio_mmio.device= per
    device to the kernel's command line, which the kernel prints back."""
    oracles.require("linux-guest")
    vmlinux = LINUX_DIR / "vmlinux"
    image = tmp_path / "d.img"
    image.write_bytes(bytes(1 << 20))
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run(
        [sys.executable, "-m", "x86vm", "run", str(vmlinux), "--cmdline", CMDLINE,
         "--drive", f"file={image}", "--virtio-rng", "--timeout", "20"],
        env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL)
    assert (f"Command line: {CMDLINE} virtio_mmio.device=0x200@0xd0000000:5 "
            "virtio_mmio.device=0x200@0xd0000200:9") in done.stdout, done.stdout[-2000:]


EMU_SCRIPT = """#!/bin/sh
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /mnt
mount -t ext2 /dev/vda /mnt || echo "x86vm-test: mount failed"
cat /mnt/hello.txt
cp /payload.bin /mnt/payload.bin
seq 1 3000 > /mnt/numbers.txt
mkdir /mnt/dir && echo "written in the guest" > /mnt/dir/note.txt
sync
umount /mnt && echo "x86vm-test: done"
reboot -f
"""


def test_linux_user_space_writes_files_to_an_ext2_image_on_emu(tmp_path):
    """Issue 12: the guest's busybox mounts an ext2 image made on the host (mke2fs + debugfs),
    copies a payload into it, writes files, syncs and unmounts; the host then reads the same
    bytes back with debugfs. On emu: this host's KVM stops Linux at its first system call
    (the KVM half is test_linux_mounts_an_ext2_root_and_its_writes_reach_the_image)."""
    oracles.require("linux-guest")
    kernel_with(EXT2_OPTIONS)
    oracles.require("e2fsprogs")
    image = tmp_path / "disk.ext2"
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"written on the host\n")
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", str(image), "8M"],
                   check=True)
    subprocess.run(["debugfs", "-w", "-R", f"write {hello} hello.txt", str(image)],
                   check=True, capture_output=True)
    payload = os.urandom(300_000)
    initrd = tmp_path / "initrd.cpio"
    initrd.write_bytes(guest_initramfs(LINUX_DIR / "initramfs.cpio", EMU_SCRIPT,
                                       {"payload.bin": payload}))
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run(
        [sys.executable, "-m", "x86vm", "run", "--backend", "emu", "--initrd", str(initrd),
         "--cmdline", "console=ttyS0 rdinit=/x86vm-init panic=-1",
         "--drive", f"file={image},cache=writeback", "--timeout", "900",
         str(LINUX_DIR / "vmlinux")],  # PVH: no decompressor, ~30 s less on emu
        env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True,
        timeout=1000, stdin=subprocess.DEVNULL)
    assert "written on the host" in done.stdout, done.stdout[-3000:]
    assert "x86vm-test: done" in done.stdout, done.stdout[-3000:]

    def cat(name: str) -> bytes:
        return subprocess.run(["debugfs", "-R", f"cat {name}", str(image)],
                              capture_output=True, check=True).stdout
    assert cat("payload.bin") == payload
    assert cat("numbers.txt") == b"".join(b"%d\n" % i for i in range(1, 3001))
    assert cat("dir/note.txt") == b"written in the guest\n"
    fsck = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout   # unmounted cleanly: nothing to repair
