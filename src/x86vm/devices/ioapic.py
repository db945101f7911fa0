"""Intel 82093AA I/O APIC at 0xFEC00000, with 24 redirection entries (as QEMU's).

Version 0x11 by default (the 82093AA, and KVM's in-kernel IOAPIC); ``version=0x20`` is QEMU
7.2's default model, which adds the EOI register at offset 0x40 (a write of a vector does what
the LAPIC's EOI broadcast does).

Memory-mapped registers (82093AA datasheet §3.0, Table 1): IOREGSEL at offset 0x00 (bits 7-0
select a register), IOWIN at 0x10 (32-bit window onto the selected register). Indirect
registers (Table 2):

====== ============ ========================================================================
index  register     bits
====== ============ ========================================================================
0x00   IOAPICID     27-24 ID (R/W)
0x01   IOAPICVER    23-16 maximum redirection entry (0x17), 7-0 version (0x11); read only
0x02   IOAPICARB    27-24 arbitration ID (loaded from the ID, §3.2.3); read only
0x10+  IOREDTBLn    two registers per entry, low then high (§3.2.4):
                    7-0 vector, 10-8 delivery mode, 11 destination mode, 12 delivery status
                    (RO), 13 polarity, 14 remote IRR (RO), 15 trigger mode (1 = level),
                    16 mask, 63-56 destination
====== ============ ========================================================================

Inputs are logical (asserted or not): the pins carry ISA and PCI lines that the board already
presents as "asserted = True", so the polarity bit is stored and not applied (as QEMU and KVM
treat their inputs). Edge-triggered: an unmasked rising edge sends one message; edges on a
masked pin are ignored (datasheet: "not delivered or held pending"). Level-triggered: while
asserted, unmasked and remote IRR clear, a message is sent and remote IRR set; the LAPIC's EOI
for the vector (:meth:`IoApic.eoi`) clears remote IRR and re-sends if the pin is still
asserted. Delivery status reads 0: messages are accepted at once.

Messages go to ``deliver(vector, mode, level, dest, logical)`` — with one vCPU, the board
passes them to its LAPIC if the destination matches (fixed and lowest priority alike).
"""

from __future__ import annotations

from collections.abc import Callable

IOAPIC_BASE = 0xFEC00000
IOAPIC_SIZE = 0x1000
NUM_PINS = 24
VERSION = 0x11
IOREGSEL, IOWIN, IOEOI = 0x00, 0x10, 0x40
REG_ID, REG_VERSION, REG_ARB, REG_REDTBL = 0x00, 0x01, 0x02, 0x10

RTE_VECTOR = 0xFF
RTE_DELIVERY_MODE = 7 << 8
RTE_DEST_LOGICAL = 1 << 11
RTE_DELIVERY_STATUS = 1 << 12
RTE_POLARITY_LOW = 1 << 13
RTE_REMOTE_IRR = 1 << 14
RTE_LEVEL = 1 << 15
RTE_MASKED = 1 << 16
RTE_WRITABLE = 0xFF00000000000000 | 0x1AFFF  # read-only: delivery status, remote IRR
RTE_RESET = RTE_MASKED

Deliver = Callable[[int, int, bool, int, bool], None]


class IoApic:
    """The IOAPIC: an MMIO device (``read``/``write``) with one input per pin
    (:meth:`irq_line` / :meth:`set_irq`)."""

    def __init__(self, deliver: Deliver | None = None, *, apic_id: int = 0,
                 version: int = VERSION) -> None:
        self.deliver = deliver or (lambda *_: None)
        self.version = version & 0xFF
        self.id = apic_id & 0xF
        self.ioregsel = 0
        self.redirection = [RTE_RESET] * NUM_PINS
        self.levels = 0  # pins asserted now
        self.sent = 0  # messages delivered (for tests and storm checks)
        self._lines = [IoApicInput(self, pin) for pin in range(NUM_PINS)]

    def irq_line(self, pin: int) -> IoApicInput:
        return self._lines[pin]

    def register(self, mmio, base: int = IOAPIC_BASE) -> None:
        mmio.register(base, IOAPIC_SIZE, self, "ioapic")

    # -- pins -------------------------------------------------------------------------------

    def set_irq(self, pin: int, level: bool) -> None:
        if not 0 <= pin < NUM_PINS:
            raise ValueError(f"IOAPIC pin {pin} out of range")
        bit = 1 << pin
        rising = level and not self.levels & bit
        self.levels = self.levels | bit if level else self.levels & ~bit
        entry = self.redirection[pin]
        if entry & RTE_LEVEL:
            if level:
                self._service(pin)
        elif rising:
            self._service(pin)

    def _service(self, pin: int) -> None:
        entry = self.redirection[pin]
        if entry & RTE_MASKED:
            return
        level = bool(entry & RTE_LEVEL)
        if level:
            if entry & RTE_REMOTE_IRR or not self.levels >> pin & 1:
                return
            self.redirection[pin] = entry | RTE_REMOTE_IRR
        self.sent += 1
        self.deliver(entry & RTE_VECTOR, (entry >> 8) & 7, level, entry >> 56,
                     bool(entry & RTE_DEST_LOGICAL))

    def eoi(self, vector: int) -> None:
        """The LAPIC's EOI of a level-triggered ``vector`` (its EOI broadcast)."""
        for pin, entry in enumerate(self.redirection):
            if entry & RTE_LEVEL and entry & RTE_REMOTE_IRR and entry & RTE_VECTOR == vector:
                self.redirection[pin] = entry & ~RTE_REMOTE_IRR
                self._service(pin)

    # -- registers ------------------------------------------------------------------------

    def read_register(self, index: int) -> int:
        if index == REG_ID:
            return self.id << 24
        if index == REG_VERSION:
            return (NUM_PINS - 1) << 16 | self.version
        if index == REG_ARB:
            return self.id << 24
        pin, high = divmod(index - REG_REDTBL, 2)
        if index >= REG_REDTBL and pin < NUM_PINS:
            return self.redirection[pin] >> (32 * high) & 0xFFFFFFFF
        return 0  # unimplemented indexes read 0 (QEMU 7.2)

    def write_register(self, index: int, value: int) -> None:
        value &= 0xFFFFFFFF
        if index == REG_ID:
            self.id = value >> 24 & 0xF
            return
        pin, high = divmod(index - REG_REDTBL, 2)
        if index < REG_REDTBL or pin >= NUM_PINS:
            return
        old = self.redirection[pin]
        shift = 32 * high
        new = (old & ~(0xFFFFFFFF << shift)) | value << shift
        new = (new & RTE_WRITABLE) | (old & ~RTE_WRITABLE)
        if not new & RTE_LEVEL:
            new &= ~RTE_REMOTE_IRR  # remote IRR is meaningless for edge entries
        self.redirection[pin] = new
        if new & RTE_LEVEL and not new & RTE_MASKED and self.levels >> pin & 1:
            self._service(pin)  # unmasked (or switched to level) while asserted

    def read(self, offset: int, size: int) -> int:
        if offset == IOREGSEL:
            value = self.ioregsel
        elif offset == IOWIN:
            value = self.read_register(self.ioregsel)
        else:
            return 0
        return value & ((1 << (8 * max(0, min(size, 4)))) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == IOREGSEL:
            self.ioregsel = value & 0xFF
        elif offset == IOWIN and size == 4:
            self.write_register(self.ioregsel, value)
        elif offset == IOEOI and self.version >= 0x20:
            self.eoi(value & 0xFF)

    def snapshot(self) -> dict[str, object]:
        return {"id": self.id, "ioregsel": self.ioregsel, "levels": self.levels,
                "redirection": list(self.redirection)}


class IoApicInput:
    """One IOAPIC pin as an :class:`~x86vm.machine.irq.IrqLine`."""

    def __init__(self, ioapic: IoApic, pin: int) -> None:
        self.ioapic, self.pin = ioapic, pin

    def set_level(self, level: bool) -> None:
        self.ioapic.set_irq(self.pin, level)
