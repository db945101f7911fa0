"""Reset-vector boot: a firmware ROM mapped as a PC chipset maps its BIOS, and the CPU's
reset state (SDM Vol. 3A §10.1.1, Table 10-1; §10.1.4 "First Instruction Executed").

The ROM ends at 4 GiB; its last 128 KiB (all of it, if smaller) also appear read-only just
below 1 MiB, where real-mode code at F000:xxxx reads them. The CPU starts in real mode with
CS selector F000, CS base FFFF0000, IP FFF0: the first fetch is at physical FFFFFFF0, the
ROM's last 16 bytes. Both copies are read-only memory (a guest write is dropped), so two
copies behave as one aliased ROM.
"""

from __future__ import annotations

from dataclasses import replace

from x86vm.cpu.state import REAL_CODE, REAL_DATA, EntryState
from x86vm.machine.boot.errors import BootError

FOUR_GIB = 1 << 32
LEGACY_WINDOW = 128 << 10       # E0000-FFFFF: the part of the ROM real-mode code sees
LEGACY_END = 1 << 20
MAX_ROM = 16 << 20              # the top 16 MiB below 4 GiB (the ISA/PCI "BIOS area")
PAGE = 4096
#: EDX at reset: the processor signature (CPUID.1:EAX) — what the emu CPU reports
RESET_EDX = 0x600


def rom_regions(rom: bytes) -> list[tuple[int, bytes]]:
    """(guest-physical address, bytes) of the two read-only copies of ``rom``; the image
    is padded at its front with 0xFF to whole pages (so it still ends at 4 GiB)."""
    if not rom:
        raise BootError("empty ROM image")
    if len(rom) > MAX_ROM:
        raise BootError(f"ROM image of {len(rom)} bytes is larger than {MAX_ROM >> 20} MiB")
    image = b"\xff" * (-len(rom) % PAGE) + bytes(rom)
    low = image[-LEGACY_WINDOW:]
    return [(FOUR_GIB - len(image), image), (LEGACY_END - len(low), low)]


def reset_state() -> EntryState:
    """The register state after RESET: real mode, CS.base FFFF0000, IP FFF0, DX the
    processor signature, everything else as Table 10-1 gives it."""
    code = replace(REAL_CODE, selector=0xF000, base=0xFFFF0000)
    data = replace(REAL_DATA, selector=0, base=0)
    return EntryState(rip=0xFFF0, gprs={"rdx": RESET_EDX}, cs=code, ds=data, es=data,
                      fs=data, gs=data, ss=data)
