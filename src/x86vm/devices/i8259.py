"""Intel 8259A programmable interrupt controllers, the PC's cascaded pair, and the ELCR.

Ports (IBM PC/AT): master 0x20/0x21, slave 0xA0/0xA1, the slave's INT output on the master's
IR2. The edge/level control registers of the PIIX chipset sit at 0x4D0 (IRQ 0-7) and 0x4D1
(IRQ 8-15); IRQ 0, 1, 2, 8 and 13 cannot be level-triggered (their ELCR bits read 0, as in
QEMU: masks 0xF8 and 0xDE).

Register access (8259A datasheet, "Programming the 8259A", the ICW and OCW formats):

====== ====================== =============================================================
port   write                  read
====== ====================== =============================================================
A0 = 0 ICW1 (D4 = 1)          IRR or ISR (OCW3 RR/RIS), or the poll word after OCW3 P = 1
       OCW2 (D4 D3 = 0 0)
       OCW3 (D4 D3 = 0 1)
A0 = 1 ICW2, ICW3, ICW4 in    IMR (or the poll word after OCW3 P = 1)
       the init sequence;
       otherwise OCW1 (IMR)
====== ====================== =============================================================

* ICW1: D0 IC4 (ICW4 follows), D1 SNGL (no ICW3), D3 LTIM (all inputs level-triggered);
  clears IMR, ISR, the special mask mode, the rotation and AEOI state, selects IRR for reading,
  gives IR7 the lowest priority and resets the edge-sense latches (datasheet "Initialization
  Command Word 1": "following initialization an interrupt request input must make a
  low-to-high transition"). Edge requests latched in IRR are dropped (as QEMU does).
* ICW2: T7-T3 of the vector (the low three bits are the IR number). ICW3: the master's slave
  bitmap / the slave's ID (recorded). ICW4: D0 µPM, D1 AEOI, D3-D2 buffered mode (recorded),
  D4 SFNM.
* OCW2: R SL EOI = 001 non-specific EOI, 011 specific EOI, 101 rotate on non-specific EOI,
  111 rotate on specific EOI, 110 set priority, 100/000 set/clear rotate in AEOI mode,
  010 no operation (datasheet, "Operation Command Word 2").
* OCW3: ESMM SMM = 11 set, 10 reset special mask mode; P = poll; RR RIS = 10 read IRR,
  11 read ISR.

Triggering: a level-triggered input (LTIM or its ELCR bit) is requested while high; its IRR bit
follows the input. An edge-triggered input is latched on its rising edge and stays requested
until acknowledged, even if it falls first — what QEMU and KVM do (the datasheet asks the
request to stay high until the first INTA; QEMU-tested guests pulse the line). A level request
that goes away before the INTA cycle gives the spurious IR7 vector (IR15 on the slave) without
setting ISR ("Interrupt Sequence", step 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from x86vm.devices.ports import ByteRegisters
from x86vm.machine.irq import IrqLine, NullIrqLine

MASTER_PORT = 0x20
SLAVE_PORT = 0xA0
ELCR_PORT = 0x4D0
CASCADE_IR = 2
SPURIOUS_IR = 7
ELCR_MASKS = (0xF8, 0xDE)  # IRQ 0, 1, 2 and 8, 13 are always edge-triggered (PIIX)


class ICW1(IntEnum):
    IC4 = 0x01
    SNGL = 0x02
    ADI = 0x04
    LTIM = 0x08
    INIT = 0x10


class ICW4(IntEnum):
    UPM = 0x01
    AEOI = 0x02
    BUF_MS = 0x04
    BUF = 0x08
    SFNM = 0x10


class OCW2(IntEnum):
    """R SL EOI (bits 7-5) commands (datasheet, "Operation Command Word 2")."""

    ROTATE_AEOI_CLEAR = 0b000
    NON_SPECIFIC_EOI = 0b001
    NOP = 0b010
    SPECIFIC_EOI = 0b011
    ROTATE_AEOI_SET = 0b100
    ROTATE_NON_SPECIFIC_EOI = 0b101
    SET_PRIORITY = 0b110
    ROTATE_SPECIFIC_EOI = 0b111


OCW3_ESMM, OCW3_SMM, OCW3_POLL, OCW3_RR, OCW3_RIS = 0x40, 0x20, 0x04, 0x02, 0x01
POLL_INTERRUPT = 0x80  # poll word bit 7 ("I"); bits 2-0 the highest requesting level


PRIORITY_ORDERS = tuple(tuple((lowest + 1 + i) & 7 for i in range(8)) for lowest in range(8))
"""For each lowest-priority IR (rotation state), the IRs from highest to lowest priority."""


class InitState(IntEnum):
    READY = 0
    ICW2 = 1
    ICW3 = 2
    ICW4 = 3


@dataclass
class Pic8259:
    """One 8259A. ``on_change`` is called whenever its INT output may have changed."""

    is_master: bool
    irr: int = 0
    imr: int = 0
    isr: int = 0
    elcr: int = 0
    elcr_mask: int = 0
    input_levels: int = 0  # the IR pins as driven now
    edge_latch: int = 0  # pins seen high since the last falling edge (edge sense)
    vector_base: int = 0
    lowest_priority: int = 7  # the IR with the lowest priority (rotation)
    init_state: InitState = InitState.READY
    icw1: int = 0
    icw3: int = 0
    icw4: int = 0
    read_isr: bool = False
    poll: bool = False
    special_mask: bool = False
    rotate_on_aeoi: bool = False

    # -- configuration derived from the ICWs ------------------------------------------

    @property
    def auto_eoi(self) -> bool:
        return bool(self.icw4 & ICW4.AEOI)

    @property
    def special_fully_nested(self) -> bool:
        return bool(self.icw4 & ICW4.SFNM)

    @property
    def single(self) -> bool:
        return bool(self.icw1 & ICW1.SNGL)

    def level_triggered(self) -> int:
        """Bitmap of the level-triggered inputs (LTIM makes them all level)."""
        return 0xFF if self.icw1 & ICW1.LTIM else self.elcr

    # -- priority resolution -----------------------------------------------------------

    def _priority_order(self) -> tuple[int, ...]:
        """IR numbers from highest to lowest priority."""
        return PRIORITY_ORDERS[self.lowest_priority & 7]

    def _highest(self, bits: int) -> int | None:
        if not bits:
            return None
        for ir in self._priority_order():
            if bits >> ir & 1:
                return ir
        return None

    def requested_ir(self) -> int | None:
        """The IR the chip would interrupt for now (priority resolver + in-service check)."""
        if not self.irr & ~self.imr:
            return None  # the common case, checked at every instruction boundary
        request = self._highest(self.irr & ~self.imr)
        if request is None:
            return None
        in_service = self.isr
        if self.special_mask:  # "Special Mask Mode": masked levels do not block others
            in_service &= ~self.imr
        if self.is_master and self.special_fully_nested:
            in_service &= ~(1 << CASCADE_IR)  # the slave may interrupt its own service
        order = self._priority_order()
        blocking = self._highest(in_service)
        if blocking is not None and order.index(blocking) <= order.index(request):
            return None
        return request

    # -- inputs --------------------------------------------------------------------------

    def set_input(self, ir: int, level: bool) -> None:
        bit = 1 << ir
        if level:
            self.input_levels |= bit
            if self.level_triggered() & bit:
                self.irr |= bit
            elif not self.edge_latch & bit:
                self.irr |= bit
            self.edge_latch |= bit
        else:
            self.input_levels &= ~bit
            self.edge_latch &= ~bit
            if self.level_triggered() & bit:
                self.irr &= ~bit

    def _resync_levels(self) -> None:
        """After ELCR/LTIM changes: level inputs' IRR bits follow their pins."""
        level = self.level_triggered()
        self.irr = (self.irr & ~level) | (self.input_levels & level)

    # -- INTA --------------------------------------------------------------------------

    def intack(self, ir: int) -> None:
        """The INTA sequence for ``ir``: ISR set (unless AEOI), an edge request consumed."""
        bit = 1 << ir
        if not self.level_triggered() & bit:
            self.irr &= ~bit
        if self.auto_eoi:
            if self.rotate_on_aeoi:
                self.lowest_priority = ir
        else:
            self.isr |= bit

    # -- register interface -------------------------------------------------------------

    def read_port(self, a0: int) -> tuple[int, bool]:
        """(value, whether it was a poll read that acknowledged an interrupt)."""
        if self.poll:
            self.poll = False
            ir = self.requested_ir()
            if ir is None:
                return 0, False
            self.intack(ir)
            return POLL_INTERRUPT | ir, True
        if a0:
            return self.imr, False
        return (self.isr if self.read_isr else self.irr), False

    def write_port(self, a0: int, value: int) -> None:
        if not a0:
            if value & ICW1.INIT:
                self._icw1(value)
            elif value & 0x18 == 0x08:
                self._ocw3(value)
            elif value & 0x18 == 0x00:
                self._ocw2(value)
            return  # D4 D3 = 1 1 cannot happen (D4 = 1 is ICW1)
        if self.init_state is InitState.ICW2:
            self.vector_base = value & 0xF8
            if not self.single:
                self.init_state = InitState.ICW3
            else:
                self.init_state = InitState.ICW4 if self.icw1 & ICW1.IC4 else InitState.READY
        elif self.init_state is InitState.ICW3:
            self.icw3 = value
            self.init_state = InitState.ICW4 if self.icw1 & ICW1.IC4 else InitState.READY
        elif self.init_state is InitState.ICW4:
            self.icw4 = value & 0x1F
            self.init_state = InitState.READY
        else:
            self.imr = value  # OCW1

    def _icw1(self, value: int) -> None:
        self.icw1 = value
        self.icw4 = 0  # IC4 = 0: all ICW4 functions are zero; ICW4 rewrites them otherwise
        self.imr = 0
        self.isr = 0
        self.edge_latch = 0
        self.irr &= self.level_triggered()  # edge requests dropped; level ones follow pins
        self._resync_levels()
        self.lowest_priority = 7
        self.special_mask = False
        self.read_isr = False
        self.poll = False
        self.rotate_on_aeoi = False
        self.init_state = InitState.ICW2

    def _ocw2(self, value: int) -> None:
        command, level = value >> 5, value & 7
        if command in (OCW2.ROTATE_AEOI_SET, OCW2.ROTATE_AEOI_CLEAR):
            self.rotate_on_aeoi = command == OCW2.ROTATE_AEOI_SET
        elif command in (OCW2.NON_SPECIFIC_EOI, OCW2.ROTATE_NON_SPECIFIC_EOI):
            ir = self._highest(self.isr)
            if ir is not None:
                self.isr &= ~(1 << ir)
                if command == OCW2.ROTATE_NON_SPECIFIC_EOI:
                    self.lowest_priority = ir
        elif command in (OCW2.SPECIFIC_EOI, OCW2.ROTATE_SPECIFIC_EOI):
            self.isr &= ~(1 << level)
            if command == OCW2.ROTATE_SPECIFIC_EOI:
                self.lowest_priority = level
        elif command == OCW2.SET_PRIORITY:
            self.lowest_priority = level

    def _ocw3(self, value: int) -> None:
        if value & OCW3_ESMM:
            self.special_mask = bool(value & OCW3_SMM)
        if value & OCW3_POLL:
            self.poll = True
        if value & OCW3_RR:
            self.read_isr = bool(value & OCW3_RIS)


class Pic8259Pair:
    """The PC's master/slave 8259A pair: an :class:`InterruptController` for a CPU whose INTR
    pin it drives, and one :class:`IrqLine` input per ISA IRQ (:meth:`irq_line`).

    ``intr`` follows the master's INT output (for the LAPIC's LINT0, or a CPU that watches the
    pin); the CPU takes interrupts with :meth:`pending_vector` / :meth:`acknowledge`.
    """

    def __init__(self, intr: IrqLine | None = None) -> None:
        self.intr = intr if intr is not None else NullIrqLine()
        self.master = Pic8259(is_master=True, elcr_mask=ELCR_MASKS[0])
        self.slave = Pic8259(is_master=False, elcr_mask=ELCR_MASKS[1])
        self.external_ir2 = False  # ISA IRQ 2 driven from outside (shares the cascade input)
        self.intr_level = False
        self.spurious = 0  # spurious (IR7/IR15) acknowledges
        self.master_ports = PicPorts(self, self.master)
        self.slave_ports = PicPorts(self, self.slave)
        self.elcr_ports = ElcrPorts(self)
        self._lines = [PicInput(self, irq) for irq in range(16)]

    def irq_line(self, irq: int) -> PicInput:
        """The input for ISA IRQ ``irq`` (0-15)."""
        return self._lines[irq]

    def register(self, pio) -> None:
        """Claim 0x20-0x21, 0xA0-0xA1 and 0x4D0-0x4D1 on a port bus."""
        pio.register(MASTER_PORT, 2, self.master_ports, "pic-master")
        pio.register(SLAVE_PORT, 2, self.slave_ports, "pic-slave")
        pio.register(ELCR_PORT, 2, self.elcr_ports, "elcr")

    # -- wiring ----------------------------------------------------------------------

    def set_irq(self, irq: int, level: bool) -> None:
        if not 0 <= irq < 16:
            raise ValueError(f"ISA IRQ {irq} out of range")
        if irq >= 8:
            self.slave.set_input(irq - 8, level)
        elif irq == CASCADE_IR:
            self.external_ir2 = bool(level)
        else:
            self.master.set_input(irq, level)
        self.update()

    def update(self) -> None:
        """Propagate the slave's INT to master IR2 and the master's INT to ``intr``."""
        slave_int = self.slave.requested_ir() is not None
        cascade = slave_int or self.external_ir2
        if bool(self.master.input_levels & (1 << CASCADE_IR)) != cascade:
            self.master.set_input(CASCADE_IR, cascade)
        level = self.master.requested_ir() is not None
        if level != self.intr_level:
            self.intr_level = level
            self.intr.set_level(level)

    def _cascaded(self, ir: int) -> bool:
        return ir == CASCADE_IR and not self.master.single

    # -- InterruptController ------------------------------------------------------------

    def pending_vector(self) -> int | None:
        ir = self.master.requested_ir()
        if ir is None:
            return None
        if self._cascaded(ir):
            slave_ir = self.slave.requested_ir()
            return self.slave.vector_base | (SPURIOUS_IR if slave_ir is None else slave_ir)
        return self.master.vector_base | ir

    def acknowledge(self) -> int:
        """The INTA cycle; with nothing requested the master answers with IR7's vector."""
        ir = self.master.requested_ir()
        if ir is None:
            self.spurious += 1
            return self.master.vector_base | SPURIOUS_IR
        self.master.intack(ir)
        if self._cascaded(ir):
            slave_ir = self.slave.requested_ir()
            if slave_ir is None:
                self.spurious += 1
                vector = self.slave.vector_base | SPURIOUS_IR
            else:
                self.slave.intack(slave_ir)
                vector = self.slave.vector_base | slave_ir
        else:
            vector = self.master.vector_base | ir
        self.update()
        return vector

    # -- state for tests and snapshots ----------------------------------------------------

    def snapshot(self) -> dict[str, int]:
        m, s = self.master, self.slave
        return {"irr": m.irr | s.irr << 8, "isr": m.isr | s.isr << 8,
                "imr": m.imr | s.imr << 8, "elcr": m.elcr | s.elcr << 8}


class PicInput:
    """One ISA IRQ input of the pair."""

    def __init__(self, pair: Pic8259Pair, irq: int) -> None:
        self.pair, self.irq = pair, irq

    def set_level(self, level: bool) -> None:
        self.pair.set_irq(self.irq, level)


class PicPorts(ByteRegisters):
    """The two ports (A0 = 0, 1) of one chip."""

    span = 2

    def __init__(self, pair: Pic8259Pair, chip: Pic8259) -> None:
        self.pair, self.chip = pair, chip

    def read_byte(self, offset: int) -> int:
        value, acknowledged = self.chip.read_port(offset)
        if acknowledged:
            self.pair.update()
        return value

    def write_byte(self, offset: int, value: int) -> None:
        self.chip.write_port(offset, value)
        self.pair.update()


class ElcrPorts(ByteRegisters):
    """ELCR1 (0x4D0, IRQ 0-7) and ELCR2 (0x4D1, IRQ 8-15)."""

    span = 2

    def __init__(self, pair: Pic8259Pair) -> None:
        self.pair = pair

    def _chip(self, offset: int) -> Pic8259:
        return self.pair.slave if offset else self.pair.master

    def read_byte(self, offset: int) -> int:
        return self._chip(offset).elcr

    def write_byte(self, offset: int, value: int) -> None:
        chip = self._chip(offset)
        chip.elcr = value & chip.elcr_mask
        chip._resync_levels()
        self.pair.update()
