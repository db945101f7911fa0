"""A real Linux kernel as the oracle for the Linux and PVH loaders: its early boot messages
print back what it read from the zero page / hvm_start_info — the memory map, the command line
and where the initrd is. Slow (software KVM: ~10 s per boot to reach those lines), and needs
the kernel built by scripts/build-linux-guest (cached in ~/.cache/x86vm/linux, or
$X86VM_LINUX_DIR); skipped otherwise.
"""

from __future__ import annotations

import re

import pytest

from support.oracles import LINUX_CACHE, require
from x86vm.devices import console as console_mod
from x86vm.devices import pc
from x86vm.machine import vm
from x86vm.machine.boot import load_image
from x86vm.machine.boot.layout import PAGE, e820_map
from x86vm.machine.memory import GuestMemory

pytestmark = [pytest.mark.slow, pytest.mark.kvm]
LINUX_DIR = LINUX_CACHE
MEMORY = 128 << 20
CMDLINE = "console=ttyS0 earlyprintk=ttyS0 x86vm.test=1"
# The run stops once the kernel prints this (after the memory map, command line and RAMDISK
# lines); on this machine's software KVM that takes ~10 s for the vmlinux and ~45 s for the
# bzImage (most of it decompressing).
STOP_MARKER = "Zone ranges:"
TIMEOUT = 120


def kernel_file(name: str) -> bytes:
    require("linux-guest")
    return (LINUX_DIR / name).read_bytes()


class StopAtMarker(console_mod.BufferConsole):
    """Collects output and asks the machine to stop once ``STOP_MARKER`` has appeared."""

    def __init__(self, request_stop) -> None:
        super().__init__()
        self.request_stop = request_stop

    def write(self, data: bytes) -> None:
        super().write(data)
        if b"\n" in data and STOP_MARKER.encode() in self.output:
            self.request_stop(0, "test: early boot lines seen")


def boot(image: bytes, initrd: bytes) -> str:
    with vm.Machine(memory_size=MEMORY, backend="kvm") as m:
        console = StopAtMarker(m.request_stop)
        pc.attach_pc_devices(m, console, debug_exit_port=0xF4)
        entry = load_image(m.memory, image, cmdline=CMDLINE, initrd=initrd)
        result = m.run(entry, timeout=TIMEOUT)
    serial = bytes(console.output).decode("latin-1")
    assert STOP_MARKER in serial, (result, serial[-2000:])
    return serial


def initrd_range_as_placed(image: bytes, initrd: bytes) -> tuple[int, int]:
    """Where the loader puts the initrd (deterministic), from a dry run on plain memory."""
    mem = GuestMemory()
    mem.add_ram(0, MEMORY)
    entry = load_image(mem, image, cmdline=CMDLINE, initrd=initrd)
    if "rsi" in entry.gprs:  # zero page: ramdisk_image
        start = mem.read_u32(entry.gprs["rsi"] + 0x218)
    else:  # hvm_start_info: module 0
        start = mem.read_u64(mem.read_u64(entry.gprs["rbx"] + 16))
    mem.close()
    return start, start + (len(initrd) + PAGE - 1) // PAGE * PAGE - 1


@pytest.mark.parametrize("name", ["bzImage", "vmlinux"])
def test_linux_reads_what_the_loader_wrote(name):
    image = kernel_file(name)
    initrd = kernel_file("initramfs.cpio.gz")
    serial = boot(image, initrd)

    assert f"Command line: {CMDLINE}" in serial, serial[:2000]
    lo, hi = initrd_range_as_placed(image, initrd)
    assert f"RAMDISK: [mem {lo:#010x}-{hi:#010x}]" in serial, serial[:3000]

    printed = re.findall(r"BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (\w+)", serial)
    mem = GuestMemory()
    mem.add_ram(0, MEMORY)
    ours = e820_map(mem)
    mem.close()
    usable = [(int(a, 16), int(b, 16) + 1) for a, b, kind in printed if kind == "usable"]
    assert usable == [(e.addr, e.end) for e in ours if e.type == 1]
    if name == "bzImage":  # the zero page's table, printed as given (PVH kernels merge holes)
        assert [(int(a, 16), int(b, 16) + 1, kind) for a, b, kind in printed] == \
            [(e.addr, e.end, "usable" if e.type == 1 else "reserved") for e in ours]
