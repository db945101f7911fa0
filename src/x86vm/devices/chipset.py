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
    cpu.interrupts = chipset.cpu_interrupts   # pending_vector/acknowledge, take_nmi, cr8,
                                              # msr_read/msr_write (0x1B, 0x6E0, 0x800-0x8FF)

The debug console (0xE9) lies inside pc-testdev's 0xE8-0xEB window (QEMU 7.2 with both reads
0 there, checked in ``tests/test_dev_testdev.py``); ``build_chipset`` registers it only
without the test device.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from x86vm.devices.debugcon import DEBUGCON_PORT, DebugCon
from x86vm.devices.i8254 import PIT_PORT, PORT_61, Pit8254
from x86vm.devices.i8259 import CASCADE_IR, ELCR_PORT, MASTER_PORT, SLAVE_PORT, Pic8259Pair
from x86vm.devices.ioapic import IOAPIC_BASE, IOAPIC_SIZE, NUM_PINS, IoApic
from x86vm.devices.lapic import (
    APIC_BASE_DEFAULT,
    APIC_PAGE_SIZE,
    LVT_LEVEL,
    SVR_ENABLE,
    Delivery,
    LocalApic,
    Reg,
)
from x86vm.devices.pc_testdev import PcTestDev
from x86vm.machine.bus import BusError
from x86vm.machine.irq import TimerHandle, TimerService

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
    Devices may drive it from any thread (the UART's host input does): it takes the
    chipset's lock. ``raised`` counts its rising edges (``--stats``); ``trace``, None unless
    the ``irq:raise`` event is on, records each level change as ``(irq, level)``.
    """

    trace: Callable[[int, int], None] | None = None

    def __init__(self, pic: Pic8259Pair, ioapic: IoApic, irq: int,
                 lock: threading.RLock) -> None:
        self.pic, self.ioapic, self.irq = pic, ioapic, irq
        self.pin = ioapic_pin(irq)
        self.level = False
        self.raised = 0
        self._lock = lock

    def set_level(self, level: bool) -> None:
        level = bool(level)
        with self._lock:
            if level != self.level:
                self.raised += level
                if self.trace is not None:
                    self.trace(self.irq, int(level))
            self.level = level
            if self.irq < ISA_IRQS:
                self.pic.set_irq(self.irq, self.level)
            if self.pin is not None:
                self.ioapic.set_irq(self.pin, self.level)


class _Serialized:
    """A device's ``read``/``write`` under the chipset's lock."""

    def __init__(self, device, lock: threading.RLock) -> None:
        self.device, self._lock = device, lock

    def read(self, offset: int, size: int) -> int:
        with self._lock:
            return self.device.read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        with self._lock:
            self.device.write(offset, size, value)


MAX_APIC_WINDOWS = 16


class ApicWindows:
    """The xAPIC page wherever IA32_APIC_BASE puts it: one bus mapping per base the guest has
    used (at most :data:`MAX_APIC_WINDOWS`, each claimed only if nothing else is there); a
    window answers only while the APIC is at its base, and reads all ones otherwise
    (kvm-unit-tests apic "apicbase" relocates it to 0xFED40000)."""

    def __init__(self, lapic: LocalApic, mmio, lock: threading.RLock) -> None:
        self.lapic, self.mmio, self._lock = lapic, mmio, lock
        self.bases: list[int] = []
        self.refused: list[int] = []

    def map(self, base: int) -> None:
        if base in self.bases or base in self.refused or self.mmio is None:
            return
        try:
            if len(self.bases) >= MAX_APIC_WINDOWS:
                raise BusError("too many APIC bases")
            self.mmio.register(base, APIC_PAGE_SIZE, _ApicWindow(self, base), f"lapic@{base:#x}")
        except BusError:
            if len(self.refused) < MAX_APIC_WINDOWS:
                self.refused.append(base)  # something else lives there: the page is hidden
            return
        self.bases.append(base)


class _ApicWindow:
    def __init__(self, windows: ApicWindows, base: int) -> None:
        self.windows, self.base = windows, base

    def read(self, offset: int, size: int) -> int:
        with self.windows._lock:
            if self.windows.lapic.base != self.base:
                return (1 << (8 * max(0, min(size, 8)))) - 1
            return self.windows.lapic.read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        with self.windows._lock:
            if self.windows.lapic.base == self.base:
                self.windows.lapic.write(offset, size, value)


class _LockedTimers:
    """The machine's TimerService with every callback run under the chipset's lock."""

    def __init__(self, timers: TimerService, lock: threading.RLock) -> None:
        self.timers, self._lock = timers, lock

    def clock_ns(self) -> int:
        return self.timers.clock_ns()

    def at(self, deadline_ns: int, callback: Callable[[], None]) -> TimerHandle:
        def locked() -> None:
            with self._lock:
                callback()
        return self.timers.at(deadline_ns, locked)


class CpuInterrupts:
    """What the vCPU calls: the LAPIC's controller seam, its NMIs and its MSRs, locked."""

    def __init__(self, lapic: LocalApic, lock: threading.RLock) -> None:
        self.lapic, self._lock = lapic, lock
        self.taken = 0  # interrupts the CPU acknowledged (--stats' irq.taken)

    def pending_vector(self) -> int | None:
        with self._lock:
            return self.lapic.pending_vector()

    def acknowledge(self) -> int | None:
        with self._lock:
            vector = self.lapic.acknowledge()
        if vector is not None:
            self.taken += 1
        return vector

    def take_nmi(self) -> bool:
        with self._lock:
            return self.lapic.take_nmi()

    def handles_msr(self, msr: int) -> bool:
        return self.lapic.handles_msr(msr)

    def msr_read(self, msr: int) -> int:
        """RDMSR; :class:`~x86vm.devices.lapic.ApicFault` means #GP(0)."""
        with self._lock:
            return self.lapic.msr_read(msr)

    def msr_write(self, msr: int, value: int) -> None:
        with self._lock:
            self.lapic.msr_write(msr, value)

    @property
    def cr8(self) -> int:
        with self._lock:
            return self.lapic.cr8

    @cr8.setter
    def cr8(self, value: int) -> None:
        with self._lock:
            self.lapic.cr8 = value


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
                self.lapic.notify_pending()


@dataclass
class Chipset:
    """The wired models; :attr:`lock` serializes every entry point (bus accesses, IRQ lines,
    timer callbacks, the vCPU's calls), so devices may raise lines from host threads."""

    pic: Pic8259Pair
    pit: Pit8254
    ioapic: IoApic
    lapic: LocalApic
    lock: threading.RLock
    lines: list[IsaIrq] = field(default_factory=list)
    apic_windows: ApicWindows | None = None
    testdev: PcTestDev | None = None
    debugcon: DebugCon | None = None
    _cpu_interrupts: CpuInterrupts | None = field(default=None, repr=False)

    def irq_line(self, irq: int) -> IsaIrq:
        """The line for ISA IRQ ``irq`` (0-15) or GSI 16-23."""
        return self.lines[irq]

    @property
    def cpu_interrupts(self) -> CpuInterrupts:
        """What the vCPU asks at instruction boundaries / interrupt windows (an
        :class:`~x86vm.machine.irq.InterruptController`), plus NMIs, CR8 and the LAPIC MSRs."""
        if self._cpu_interrupts is None:
            self._cpu_interrupts = CpuInterrupts(self.lapic, self.lock)
        return self._cpu_interrupts

    def interrupt_stats(self) -> dict[str, int]:
        """``--stats``: rising edges of the IRQ lines (in all, and by line) and the
        interrupts the CPU took (acknowledged: from the IOAPIC, the 8259s or the LAPIC)."""
        raised = {line.irq: line.raised for line in self.lines if line.raised}
        return {"irq.raised": sum(raised.values()),
                **{f"irq.raised.{irq}": count for irq, count in raised.items()},
                "irq.taken": self.cpu_interrupts.taken}

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {"pic": self.pic.snapshot(), "pit": self.pit.snapshot(),
                    "ioapic": self.ioapic.snapshot(), "lapic": self.lapic.snapshot()}


def build_chipset(timers: TimerService, *, pio=None, mmio=None, apic_id: int = 0,
                  tsc_hz: int = 1_000_000_000, read_tsc: Callable[[], int] | None = None,
                  on_pending: Callable[[], None] | None = None, testdev: bool = False,
                  debugcon_write: Callable[[bytes], object] | None = None,
                  firmware: bool = True, ioapic_version: int = 0x11,
                  phys_addr_bits: int = 40, x2apic: bool = True) -> Chipset:
    """Create and wire the PIC pair, PIT, IOAPIC and LAPIC (one vCPU); register them on
    ``pio``/``mmio`` when given. ``on_pending`` is called whenever an interrupt may have
    become deliverable (a KVM run loop without in-kernel irqchip requests an interrupt
    window then). ``testdev`` adds pc-testdev; otherwise ``debugcon_write`` (if given)
    gets a debug console at 0xE9. ``firmware`` leaves the chipset as SeaBIOS hands it to a
    ``qemu -kernel`` guest (:func:`seabios_handoff`); False keeps the reset state.
    ``ioapic_version`` 0x11 is the 82093AA (and KVM's); QEMU 7.2's model is 0x20.
    ``phys_addr_bits`` and ``x2apic`` must agree with the vCPU's CPUID (MAXPHYADDR, x2APIC)."""
    lock = threading.RLock()
    timers = _LockedTimers(timers, lock)
    intr = _PicIntr()
    pic = Pic8259Pair(intr)
    ioapic = IoApic(version=ioapic_version)
    lapic = LocalApic(timers, apic_id=apic_id, extint=pic, eoi_broadcast=ioapic.eoi,
                      tsc_hz=tsc_hz, read_tsc=read_tsc, on_pending=on_pending,
                      phys_addr_bits=phys_addr_bits, x2apic_supported=x2apic)
    intr.lapic = lapic

    def deliver(vector: int, mode: int, level: bool, dest: int, logical: bool) -> None:
        if lapic.matches(dest, logical):
            lapic.accept(vector, mode, level)

    ioapic.deliver = deliver
    lines = [IsaIrq(pic, ioapic, irq, lock) for irq in range(NUM_PINS)]
    pit = Pit8254(timers, lines[PIT_IRQ])
    chipset = Chipset(pic, pit, ioapic, lapic, lock, lines)
    if testdev:
        chipset.testdev = PcTestDev(lines)
    elif debugcon_write is not None:
        chipset.debugcon = DebugCon(debugcon_write)
    if pio is not None:
        for base, size, device, name in (
                (MASTER_PORT, 2, pic.master_ports, "pic-master"),
                (SLAVE_PORT, 2, pic.slave_ports, "pic-slave"),
                (ELCR_PORT, 2, pic.elcr_ports, "elcr"),
                (PIT_PORT, 4, pit, "pit"), (PORT_61, 1, pit.port61, "port61")):
            pio.register(base, size, _Serialized(device, lock), name)
        if chipset.testdev is not None:
            chipset.testdev.register(pio, mmio)  # it only drives the (locked) lines
        if chipset.debugcon is not None:
            pio.register(DEBUGCON_PORT, 1, chipset.debugcon, "debugcon")
    if firmware:
        seabios_handoff(chipset)
    for line in lines:  # --stats counts from the guest's start (the PIT's OUT is up now)
        line.raised = 0
    if mmio is not None:
        mmio.register(IOAPIC_BASE, IOAPIC_SIZE, _Serialized(ioapic, lock), "ioapic")
        chipset.apic_windows = windows = ApicWindows(lapic, mmio, lock)
        windows.map(APIC_BASE_DEFAULT)
        lapic.on_relocate = lambda old, new: windows.map(new)
    return chipset


# What SeaBIOS leaves programmed when it enters a ``qemu -kernel`` guest, read under QEMU 7.2
# at a multiboot kernel's first instruction (monitor ``info pic`` / ``info lapic``, PIT
# read-back status): 8259s at vectors 0x08 and 0x70 with IMR 0xB8 / 0x8E and ELCR 0x00 / 0x0C,
# PIT counter 0 in mode 2, LSB/MSB, binary (count 0: 18.2 Hz, SeaBIOS's timer setup), the
# LAPIC in virtual-wire mode.
SEABIOS_PIC_INIT = ((MASTER_PORT, 0x11), (SLAVE_PORT, 0x11), (MASTER_PORT + 1, 0x08),
                    (SLAVE_PORT + 1, 0x70), (MASTER_PORT + 1, 0x04), (SLAVE_PORT + 1, 0x02),
                    (MASTER_PORT + 1, 0x01), (SLAVE_PORT + 1, 0x01), (MASTER_PORT + 1, 0xB8),
                    (SLAVE_PORT + 1, 0x8E))
SEABIOS_ELCR = (0x00, 0x0C)
SEABIOS_PIT = ((PIT_PORT + 3, 0x34), (PIT_PORT, 0x00), (PIT_PORT, 0x00))


def seabios_handoff(chipset: Chipset) -> None:
    """Program the chipset as firmware would have (x86vm boots guests without a BIOS)."""
    with chipset.lock:
        for port, value in SEABIOS_PIC_INIT:
            ports = chipset.pic.master_ports if port < SLAVE_PORT else chipset.pic.slave_ports
            ports.write(port & 1, 1, value)
        for offset, value in enumerate(SEABIOS_ELCR):
            chipset.pic.elcr_ports.write(offset, 1, value)
        for port, value in SEABIOS_PIT:
            chipset.pit.write(port - PIT_PORT, 1, value)
        chipset.lapic.virtual_wire()


def seabios_writes() -> tuple[tuple[str, int, int], ...]:
    """:func:`seabios_handoff` as the guest's port and MMIO writes, for controllers only the
    guest can program (KVM's in-kernel irqchip): the Multiboot loader runs them in a stub
    before the kernel (``PlatformTables.init_writes``, machine/boot/bios.py)."""
    writes = [("io", port, value) for port, value in SEABIOS_PIC_INIT]
    writes += [("io", ELCR_PORT + i, value) for i, value in enumerate(SEABIOS_ELCR)]
    writes += [("io", port, value) for port, value in SEABIOS_PIT]
    writes += [("mmio", APIC_BASE_DEFAULT + Reg.SVR, 0xFF | SVR_ENABLE),
               ("mmio", APIC_BASE_DEFAULT + Reg.LVT_LINT0, LVT_LEVEL | Delivery.EXTINT << 8),
               ("mmio", APIC_BASE_DEFAULT + Reg.LVT_LINT1, LVT_LEVEL | Delivery.NMI << 8)]
    return tuple(writes)
