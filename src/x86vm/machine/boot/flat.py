"""Flat binaries: the image is copied to one address and entered in real mode at CS:IP, with
DS = ES = SS = CS — how a BIOS starts a boot sector (loaded at 0x7C00, entered at 0000:7C00).
"""

from __future__ import annotations

from x86vm.machine.boot.errors import BootError
from x86vm.machine.boot.state import EntryState, real_mode
from x86vm.machine.memory import GuestMemory

BOOT_SECTOR_SIZE = 512
BOOT_SIGNATURE = b"\x55\xaa"  # bytes 510-511 of a boot sector


def is_boot_sector(image: bytes) -> bool:
    return len(image) >= BOOT_SECTOR_SIZE and image[510:512] == BOOT_SIGNATURE


def load_flat(memory: GuestMemory, image: bytes, *, load_addr: int = 0x7C00,
              cs_ip: tuple[int, int] = (0, 0x7C00)) -> EntryState:
    """Copy ``image`` to ``load_addr`` and return a real-mode entry at ``cs_ip``."""
    if not image:
        raise BootError("empty image")
    cs, ip = cs_ip
    if not (0 <= cs <= 0xFFFF and 0 <= ip <= 0xFFFF):
        raise BootError(f"real-mode entry {cs:#x}:{ip:#x} does not fit 16-bit CS:IP")
    if not memory.is_ram(load_addr, len(image)):
        raise BootError(f"flat image of {len(image)} bytes at {load_addr:#x} does not fit in RAM")
    entry = (cs << 4) + ip
    if not load_addr <= entry < load_addr + len(image):
        raise BootError(f"entry {cs:04x}:{ip:04x} (linear {entry:#x}) is outside the image "
                        f"loaded at {load_addr:#x}-{load_addr + len(image):#x}")
    memory.write(load_addr, image)
    return real_mode(cs, ip)
