"""What a PC BIOS leaves behind for a kernel it boots, for guests that rely on it.

x86vm boots without a BIOS. ``qemu -kernel`` runs SeaBIOS first, and some guests written for
it lean on what SeaBIOS leaves: kvm-unit-tests' realmode test switches to real mode, loads
the IVT at 0 and waits in ``sti; hlt`` for the BIOS timer interrupt (IRQ 0 from the PIT, its
handler EOIs the 8259 and returns). Two pieces, both written into the BIOS area:

* :func:`write_ivt` — a real-mode interrupt vector table (SDM Vol. 3A §20.1.4) whose
  hardware-interrupt vectors (the 8259 pair at SeaBIOS's bases 0x08 and 0x70) point at
  handlers that send a non-specific EOI to the controllers and IRET, every other vector at
  a bare IRET, as SeaBIOS's defaults do.
* :func:`chipset_init_stub` — for controllers the loader cannot program directly (KVM's
  in-kernel irqchip): a few 32-bit instructions run before the kernel's entry point that
  make the port and MMIO writes firmware makes (PIC ICWs, ELCR, PIT, the LAPIC's virtual
  wire), then restore EAX and jump to the entry with the loader's registers untouched.
"""

from __future__ import annotations

import struct
from dataclasses import replace

from x86vm.machine.boot.state import EntryState

BIOS_SEGMENT = 0xF000
HANDLERS_AT = 0xF1000          # after the firmware tables (firmware.py, 0xF0000 + 0x1000)
INIT_STUB_AT = 0xF1100
IRET = b"\xcf"
# push ax; mov al, 0x20; out 0x20, al; pop ax; iret  (8259A OCW2 non-specific EOI)
EOI_MASTER = b"\x50\xb0\x20\xe6\x20\x58\xcf"
# push ax; mov al, 0x20; out 0xa0, al; out 0x20, al; pop ax; iret
EOI_BOTH = b"\x50\xb0\x20\xe6\xa0\xe6\x20\x58\xcf"
MASTER_BASE, SLAVE_BASE = 0x08, 0x70   # SeaBIOS's 8259 vector bases

Write = tuple[str, int, int]
"""("io", port, byte) or ("mmio", physical address, 32-bit value)."""


def write_ivt(memory, master_base: int = MASTER_BASE, slave_base: int = SLAVE_BASE) -> None:
    """The IVT at 0 and its handlers at F000:1000 (see the module docstring)."""
    handlers = IRET + EOI_MASTER + EOI_BOTH
    offsets = {"iret": 0, "master": len(IRET), "both": len(IRET) + len(EOI_MASTER)}
    base_offset = HANDLERS_AT - (BIOS_SEGMENT << 4)
    ivt = bytearray()
    for vector in range(256):
        kind = ("master" if master_base <= vector < master_base + 8 else
                "both" if slave_base <= vector < slave_base + 8 else "iret")
        ivt += struct.pack("<HH", base_offset + offsets[kind], BIOS_SEGMENT)
    memory.write(HANDLERS_AT, handlers)
    memory.write(0, bytes(ivt))


def _encode(write: Write) -> bytes:
    kind, address, value = write
    if kind == "io":
        if not 0 <= address <= 0xFFFF or not 0 <= value <= 0xFF:
            raise ValueError(f"bad port write {write!r}")
        mov_al = b"\xb0" + bytes([value])
        if address < 0x100:
            return mov_al + b"\xe6" + bytes([address])                       # out imm8, al
        return mov_al + b"\x66\xba" + struct.pack("<H", address) + b"\xee"  # mov dx; out dx
    if kind == "mmio":
        return b"\xc7\x05" + struct.pack("<II", address, value & 0xFFFFFFFF)  # mov [abs], imm
    raise ValueError(f"bad firmware write kind {kind!r}")


def chipset_init_stub(memory, entry: EntryState, writes: tuple[Write, ...]) -> EntryState:
    """Write the stub for a 32-bit protected-mode, paging-off ``entry`` (Multiboot's) and
    return the state that starts it; ``entry`` itself when there is nothing to write."""
    if not writes:
        return entry
    code = b"".join(_encode(w) for w in writes)
    rax = entry.gprs.get("rax", 0) & 0xFFFFFFFF
    code += b"\xb8" + struct.pack("<I", rax)                                  # mov eax, imm32
    jump_from = INIT_STUB_AT + len(code) + 5
    code += b"\xe9" + struct.pack("<i", entry.rip - jump_from)               # jmp rel32
    if INIT_STUB_AT + len(code) > 0xF2000:
        raise ValueError(f"{len(writes)} firmware writes do not fit the init stub")
    memory.write(INIT_STUB_AT, code)
    return replace(entry, rip=INIT_STUB_AT)
