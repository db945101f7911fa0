"""The PC's interrupt and timer chipset, wired as QEMU's ``-M pc`` wires it.

===================== ============================== =========================================
device                where                          module
===================== ============================== =========================================
8259A master / slave  ports 0x20-0x21 / 0xA0-0xA1    :mod:`~x86vm.devices.i8259`
ELCR                  ports 0x4D0-0x4D1              :mod:`~x86vm.devices.i8259`
8254 PIT              ports 0x40-0x43, 0x61          :mod:`~x86vm.devices.i8254`
IOAPIC                MMIO 0xFEC00000 (4 KiB)        :mod:`~x86vm.devices.ioapic`
local APIC            MMIO 0xFEE00000 (4 KiB), MSRs  :mod:`~x86vm.devices.lapic`
pc-testdev (optional) ports 0xE0-0xEB, 0x2000-0x2017 :mod:`~x86vm.devices.pc_testdev`
===================== ============================== =========================================

Routing (what ACPI's MADT and the MP table of QEMU describe): ISA IRQ n goes to 8259 input n
and IOAPIC pin n, except IRQ 0 (the PIT), which reaches IOAPIC pin 2 (the MADT
interrupt-source override 0 → GSI 2), and IRQ 2, which is the cascade and reaches only the
master's IR2. GSIs 16-23 go to the IOAPIC only. The 8259's INTR goes to the LAPIC's LINT0
(ExtINT); the IOAPIC's messages go to the LAPIC; the LAPIC's EOI of a level-triggered vector
goes back to the IOAPIC. The CPU asks the LAPIC (:attr:`Chipset.cpu_interrupts`), which
passes the 8259 through while LINT0 is ExtINT or the APIC is disabled.

How a board uses it (``devices/pc.py`` or the ``PcBoard``)::

    chipset = build_chipset(machine.timers, pio=machine.pio, mmio=machine.mmio)
    irq_line = chipset.irq_line          # instead of the backend's irq_line, for every device
    cpu.interrupts = chipset.cpu_interrupts
    cpu.msr_hooks = chipset.lapic        # msr_read/msr_write for 0x1B, 0x6E0, 0x800-0x8FF

The debug console (0xE9) lies inside pc-testdev's 0xE8-0xEB window (QEMU 7.2 with both reads
0 there, checked in ``tests/test_dev_testdev.py``); ``build_chipset`` registers it only
without the test device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from x86vm.devices.debugcon import DEBUGCON_PORT, DebugCon
from x86vm.devices.i8254 import Pit8254
from x86vm.devices.i8259 import CASCADE_IR, Pic8259Pair
from x86vm.devices.ioapic import IOAPIC_BASE, NUM_PINS, IoApic
from x86vm.devices.lapic import APIC_BASE_DEFAULT, APIC_PAGE_SIZE, LocalApic
from x86vm.devices.pc_testdev import PcTestDev
from x86vm.machine.irq import InterruptController, TimerService

ISA_IRQS = 16
PIT_IRQ = 0
IRQ0_GSI = 2  # MADT interrupt source override: ISA IRQ 0 -> GSI 2


def ioapic_pin(irq: int) -> int | None:
    """The IOAPIC pin an ISA IRQ / GSI reaches (None for the cascade, IRQ 2)."""
    if irq == PIT_IRQ:
        return IRQ0_GSI
    if irq == CASCADE_IR:
        return None
    return irq


class IsaIrq:
    """One ISA IRQ (or GSI 16-23) line, fanned out to the 8259 pair and the IOAPIC.

    Pin 2 of the IOAPIC hears IRQ 0 only (IRQ 2 is the cascade, never an IOAPIC input).
    """

    def __init__(self, pic: Pic8259Pair, ioapic: IoApic, irq: int) -> None:
        self.pic, self.ioapic, self.irq = pic, ioapic, irq
        self.pin = ioapic_pin(irq)
        self.level = False

    def set_level(self, level: bool) -> None:
        self.level = bool(level)
        if self.irq < ISA_IRQS:
            self.pic.set_irq(self.irq, self.level)
        if self.pin is not None:
            self.ioapic.set_irq(self.pin, self.level)


class _PicIntr:
    """The 8259's INTR pin, wired to the LAPIC's LINT0 (and the board's wake-up)."""

    def __init__(self) -> None:
        self.lapic: LocalApic | None = None
        self.level = False

    def set_level(self, level: bool) -> None:
        self.level = bool(level)
        if self.lapic is not None:
            self.lapic.set_lint(0, self.level)
            if self.level:
                self.lapic._notify()


@dataclass
class Chipset:
    pic: Pic8259Pair
    pit: Pit8254
    ioapic: IoApic
    lapic: LocalApic
    lines: list[IsaIrq] = field(default_factory=list)
    testdev: PcTestDev | None = None
    debugcon: DebugCon | None = None

    def irq_line(self, irq: int) -> IsaIrq:
        """The line for ISA IRQ ``irq`` (0-15) or GSI 16-23."""
        return self.lines[irq]

    @property
    def cpu_interrupts(self) -> InterruptController:
        """What the vCPU asks at instruction boundaries / interrupt windows."""
        return self.lapic

    def snapshot(self) -> dict[str, object]:
        return {"pic": self.pic.snapshot(), "ioapic": self.ioapic.snapshot(),
                "lapic": self.lapic.snapshot()}


def build_chipset(timers: TimerService, *, pio=None, mmio=None, apic_id: int = 0,
                  tsc_hz: int = 1_000_000_000, read_tsc: Callable[[], int] | None = None,
                  on_pending: Callable[[], None] | None = None, testdev: bool = False,
                  debugcon_write: Callable[[bytes], object] | None = None,
                  virtual_wire: bool = True, ioapic_version: int = 0x11) -> Chipset:
    """Create and wire the PIC pair, PIT, IOAPIC and LAPIC (one vCPU); register them on
    ``pio``/``mmio`` when given. ``on_pending`` is called whenever an interrupt may have
    become deliverable (a KVM run loop without in-kernel irqchip requests an interrupt
    window then). ``testdev`` adds pc-testdev; otherwise ``debugcon_write`` (if given)
    gets a debug console at 0xE9. ``virtual_wire`` leaves the LAPIC as PC firmware does
    (LINT0 ExtINT, LINT1 NMI); False keeps its reset state (all LVTs masked).
    ``ioapic_version`` 0x11 is the 82093AA (and KVM's); QEMU 7.2's model is 0x20."""
    intr = _PicIntr()
    pic = Pic8259Pair(intr)
    ioapic = IoApic(version=ioapic_version)
    lapic = LocalApic(timers, apic_id=apic_id, extint=pic, eoi_broadcast=ioapic.eoi,
                      tsc_hz=tsc_hz, read_tsc=read_tsc, on_pending=on_pending)
    intr.lapic = lapic
    if virtual_wire:
        lapic.virtual_wire()

    def deliver(vector: int, mode: int, level: bool, dest: int, logical: bool) -> None:
        if lapic.matches(dest, logical):
            lapic.accept(vector, mode, level)

    ioapic.deliver = deliver
    lines = [IsaIrq(pic, ioapic, irq) for irq in range(NUM_PINS)]
    pit = Pit8254(timers, lines[PIT_IRQ])
    chipset = Chipset(pic, pit, ioapic, lapic, lines)
    if testdev:
        chipset.testdev = PcTestDev(lines)
    elif debugcon_write is not None:
        chipset.debugcon = DebugCon(debugcon_write)
    if pio is not None:
        pic.register(pio)
        pit.register(pio)
        if chipset.testdev is not None:
            chipset.testdev.register(pio, mmio)
        if chipset.debugcon is not None:
            pio.register(DEBUGCON_PORT, 1, chipset.debugcon, "debugcon")
    if mmio is not None:
        ioapic.register(mmio, IOAPIC_BASE)
        mmio.register(APIC_BASE_DEFAULT, APIC_PAGE_SIZE, lapic, "lapic")
    return chipset
