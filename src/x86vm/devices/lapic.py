"""The local APIC of one vCPU: the xAPIC page at 0xFEE00000, the x2APIC MSRs, the APIC timer.

Register map (Intel SDM Vol. 3A §11.4.1, "Local APIC Register Address Map"; x2APIC MSR =
0x800 + offset / 16, §11.12.1.2):

====== ===== ============================ ====================================================
offset MSR   register                     notes
====== ===== ============================ ====================================================
0x020  0x802 ID                           xAPIC: bits 31-24, R/W; x2APIC: 32-bit, read only
0x030  0x803 version                      0x00050014: version 0x14, max LVT entry 5 (QEMU's)
0x080  0x808 TPR                          bits 7-0; CR8 = TPR[7:4] (§11.8.6)
0x090  —     APR                          xAPIC only (§11.6.2.4, computed)
0x0A0  0x80A PPR                          read only (§11.8.3.1)
0x0B0  0x80B EOI                          write only; x2APIC: a nonzero write is #GP
0x0D0  0x80D LDR                          xAPIC: bits 31-24; x2APIC: read only, from the ID
0x0E0  —     DFR                          xAPIC only; bits 27-0 read 1
0x0F0  0x80F SVR                          vector, bit 8 APIC software enable
0x100  0x810 ISR (8 × 32 bits)            read only
0x180  0x818 TMR (8 × 32 bits)            read only
0x200  0x820 IRR (8 × 32 bits)            read only
0x280  0x828 ESR                          a write latches the errors since the last write
0x300  0x830 ICR low (x2APIC: 64 bits)    a write sends the IPI
0x310  —     ICR high                     xAPIC destination, bits 31-24
0x320  0x832 LVT timer                    mode bits 18-17: one-shot, periodic, TSC-deadline
0x330  0x833 LVT thermal sensor           stored
0x340  0x834 LVT performance counters     stored
0x350  0x835 LVT LINT0                    ExtINT here passes the 8259's INTR through
0x360  0x836 LVT LINT1
0x370  0x837 LVT error
0x380  0x838 timer initial count
0x390  0x839 timer current count          read only
0x3E0  0x83E timer divide configuration   bits 3, 1-0 (§11.5.4)
—      0x83F SELF IPI                     x2APIC only, write only
====== ===== ============================ ====================================================

Reset values (§11.4.7.1, and QEMU 7.2 without firmware): ID = the initial APIC ID, DFR all
ones, SVR 0xFF (software disabled), every LVT masked. Firmware puts the bootstrap processor in
"virtual wire" mode (MP spec §3.6.2.2: LINT0 ExtINT, LINT1 NMI, SVR enabled — SeaBIOS
leaves 0x8700, 0x8400, 0x1FF under QEMU 7.2), so the 8259's
interrupts reach the CPU before a guest programs its APIC: :meth:`LocalApic.virtual_wire`,
which ``build_chipset`` calls since x86vm boots without a BIOS. While software-disabled
(§11.4.7.2) guest writes cannot unmask an LVT entry; LVT, ICR and SVR keep only their defined
bits (§11.5.1, "Local Vector Table") — QEMU stores LVT and ICR words whole.

The xAPIC page takes 32-bit accesses at 16-byte aligned offsets; narrower reads return the
corresponding bytes, other writes are ignored (what KVM does; the SDM leaves them undefined).
In x2APIC mode, or globally disabled, the page is inert (reads all ones) and in x2APIC mode the
MSRs answer; MSR accesses outside x2APIC
mode or to registers the table does not list raise :class:`ApicFault` (the CPU's #GP(0)).

One vCPU: IPIs reach only this APIC (self-IPI by shorthand or by its own destination); INIT,
SIPI and IPIs to others are counted in :attr:`LocalApic.unsupported_ipis`. The timer runs on
guest time from ``TimerService`` at ``bus_hz`` (1 GHz, as QEMU and KVM), divided by the divide
configuration; a periodic timer fires at most once per :data:`MIN_PERIOD_NS` of guest time
(coalescing, as KVM does with its minimum period), so a guest cannot flood the run loop.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

from x86vm.machine.irq import InterruptController, RegisterFault, TimerHandle, TimerService

APIC_BASE_DEFAULT = 0xFEE00000
APIC_PAGE_SIZE = 0x1000
MSR_IA32_APIC_BASE = 0x1B
MSR_IA32_TSC_DEADLINE = 0x6E0
X2APIC_MSR_FIRST, X2APIC_MSR_LAST = 0x800, 0x8FF
VERSION = 0x00050014
MIN_PERIOD_NS = 10_000
NS_PER_S = 1_000_000_000

BASE_BSP, BASE_EXTD, BASE_EN = 1 << 8, 1 << 10, 1 << 11
PHYS_ADDR_BITS = 40  # MAXPHYADDR (QEMU's qemu64 CPU): IA32_APIC_BASE bits 12..39


class Reg(IntEnum):
    """xAPIC register offsets (§11.4.1)."""

    ID = 0x020
    VERSION = 0x030
    TPR = 0x080
    APR = 0x090
    PPR = 0x0A0
    EOI = 0x0B0
    RRD = 0x0C0
    LDR = 0x0D0
    DFR = 0x0E0
    SVR = 0x0F0
    ISR = 0x100
    TMR = 0x180
    IRR = 0x200
    ESR = 0x280
    ICR_LOW = 0x300
    ICR_HIGH = 0x310
    LVT_TIMER = 0x320
    LVT_THERMAL = 0x330
    LVT_PERF = 0x340
    LVT_LINT0 = 0x350
    LVT_LINT1 = 0x360
    LVT_ERROR = 0x370
    TIMER_INITIAL = 0x380
    TIMER_CURRENT = 0x390
    TIMER_DIVIDE = 0x3E0
    SELF_IPI = 0x3F0  # x2APIC only


LVT_REGS = (Reg.LVT_TIMER, Reg.LVT_THERMAL, Reg.LVT_PERF, Reg.LVT_LINT0, Reg.LVT_LINT1,
            Reg.LVT_ERROR)
# Writable bits per LVT entry (§11.5.1, "Local Vector Table"): vector, delivery mode,
# polarity, trigger, mask, timer mode; delivery status and remote IRR are read only.
LVT_WRITABLE = {Reg.LVT_TIMER: 0x700FF, Reg.LVT_THERMAL: 0x107FF, Reg.LVT_PERF: 0x107FF,
                Reg.LVT_LINT0: 0x1A7FF, Reg.LVT_LINT1: 0x1A7FF, Reg.LVT_ERROR: 0x100FF}
LVT_MASKED = 1 << 16
LVT_LEVEL = 1 << 15
LVT_TIMER_MODE = 3 << 17
TIMER_ONE_SHOT, TIMER_PERIODIC, TIMER_TSC_DEADLINE = 0, 1 << 17, 2 << 17
SVR_ENABLE = 1 << 8
SVR_WRITABLE = 0x1FF  # bit 9 (focus checking) is reserved since the Pentium 4, 0 in QEMU


class Delivery(IntEnum):
    """Delivery modes (ICR / LVT / IOAPIC bits 10-8)."""

    FIXED = 0
    LOWEST = 1
    SMI = 2
    NMI = 4
    INIT = 5
    STARTUP = 6
    EXTINT = 7


class Esr(IntEnum):
    """Error Status Register bits (§11.5.3)."""

    SEND_ILLEGAL_VECTOR = 1 << 5
    RECEIVE_ILLEGAL_VECTOR = 1 << 6
    ILLEGAL_REGISTER = 1 << 7


ICR_WRITABLE = 0x000CCFFF  # vector, mode, dest mode, level, trigger, shorthand
ICR_DEST_LOGICAL = 1 << 11
ICR_SHORTHAND_SHIFT = 18
SHORTHAND_NONE, SHORTHAND_SELF, SHORTHAND_ALL, SHORTHAND_OTHERS = 0, 1, 2, 3


class ApicFault(RegisterFault):
    """The access is a #GP(0) (SDM §11.12.1: reserved MSR, reserved bits, wrong mode)."""


def _bit_get(bits: int, vector: int) -> bool:
    return bool(bits >> vector & 1)


def _highest(bits: int) -> int | None:
    return bits.bit_length() - 1 if bits else None


class LocalApic:
    """One vCPU's local APIC; an :class:`InterruptController` for that vCPU.

    ``timers`` gives guest time; ``extint`` is the 8259 pair behind LINT0 (ExtINT);
    ``eoi_broadcast(vector)`` is called on the EOI of a level-triggered vector (the IOAPIC's
    EOI); ``tsc_hz`` converts IA32_TSC_DEADLINE values (TSC = guest ns × tsc_hz / 10^9 unless
    ``read_tsc`` gives the vCPU's TSC).
    """

    def __init__(self, timers: TimerService, *, apic_id: int = 0, bsp: bool = True,
                 extint: InterruptController | None = None,
                 eoi_broadcast: Callable[[int], None] | None = None,
                 tsc_hz: int = 1_000_000_000, read_tsc: Callable[[], int] | None = None,
                 bus_hz: int = 1_000_000_000,
                 on_relocate: Callable[[int, int], None] | None = None,
                 on_pending: Callable[[], None] | None = None,
                 phys_addr_bits: int = PHYS_ADDR_BITS, x2apic_supported: bool = True) -> None:
        if tsc_hz <= 0 or bus_hz <= 0:
            raise ValueError("tsc_hz and bus_hz must be positive")
        if not 36 <= phys_addr_bits <= 52:
            raise ValueError(f"MAXPHYADDR {phys_addr_bits} is not 36..52")
        self.phys_addr_bits = phys_addr_bits  # must match CPUID.80000008H:EAX[7:0]
        self.x2apic_supported = x2apic_supported  # must match CPUID.01H:ECX.x2APIC[bit 21]
        self.timers = timers
        self.initial_id = apic_id
        self.bsp = bsp
        self.extint = extint
        self.eoi_broadcast = eoi_broadcast
        self.tsc_hz = tsc_hz
        self.read_tsc = read_tsc or (lambda: timers.clock_ns() * tsc_hz // 1_000_000_000)
        self.bus_hz = bus_hz
        self.on_relocate = on_relocate
        self.on_pending = on_pending  # told when something may have become deliverable
        self.apic_base = APIC_BASE_DEFAULT | BASE_EN | (BASE_BSP if bsp else 0)
        self._timer_event: TimerHandle | None = None
        self.timer_fired = 0
        self.unsupported_ipis = 0
        self.init_requests = 0
        self.nmi_pending = 0
        self.reset()

    # -- state ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Power-up / INIT state (§11.4.7.1)."""
        self._cancel_timer()
        self.id = self.initial_id
        self.tpr = 0
        self.ldr = 0
        self.dfr = 0xFFFFFFFF
        self.svr = 0xFF
        self.irr = self.isr = self.tmr = 0
        self.esr = 0
        self._esr_pending = 0
        self.icr = 0
        self.lvt = {reg: LVT_MASKED for reg in LVT_REGS}
        self.timer_initial = 0
        self.timer_divide = 0
        self._timer_start = 0
        self._timer_running = False
        self.tsc_deadline = 0
        self.extint_requested = False  # an ExtINT message (IOAPIC) awaits the 8259's vector

    def virtual_wire(self) -> None:
        """What PC firmware leaves on the BSP (MP spec §3.6.2.2 "virtual wire mode"), as
        SeaBIOS under QEMU 7.2 does (read with the monitor's ``info lapic``): APIC software
        enabled (SVR 0x1FF), LINT0 ExtINT and LINT1 NMI, both level-triggered."""
        self.svr |= SVR_ENABLE
        self.lvt[Reg.LVT_LINT0] = LVT_LEVEL | Delivery.EXTINT << 8
        self.lvt[Reg.LVT_LINT1] = LVT_LEVEL | Delivery.NMI << 8

    @property
    def hw_enabled(self) -> bool:
        return bool(self.apic_base & BASE_EN)

    @property
    def x2apic(self) -> bool:
        return bool(self.apic_base & BASE_EXTD) and self.hw_enabled

    @property
    def sw_enabled(self) -> bool:
        return bool(self.svr & SVR_ENABLE)

    @property
    def base(self) -> int:
        return self.apic_base & ~0xFFF & ((1 << self.phys_addr_bits) - 1)

    # -- priorities (§11.8.3.1, §11.6.2.4) -------------------------------------------------

    @property
    def ppr(self) -> int:
        isrv = _highest(self.isr) or 0
        return self.tpr & 0xFF if (self.tpr >> 4) >= (isrv >> 4) else isrv & 0xF0

    @property
    def apr(self) -> int:
        tpr, isrv, irrv = self.tpr >> 4, (_highest(self.isr) or 0) >> 4, \
            (_highest(self.irr) or 0) >> 4
        if tpr >= irrv and tpr > isrv:
            return self.tpr & 0xFF
        return max(tpr, isrv, irrv) << 4

    @property
    def cr8(self) -> int:
        """CR8 is TPR bits 7-4 (§11.8.6.1)."""
        return self.tpr >> 4 & 0xF

    @cr8.setter
    def cr8(self, value: int) -> None:
        self.tpr = (value & 0xF) << 4
        self._priority_lowered()

    def _priority_lowered(self) -> None:
        """After an EOI or a TPR write a waiting vector may now be deliverable."""
        if self._apic_vector() is not None:
            self.notify_pending()

    # -- accepting interrupts ------------------------------------------------------------

    def accept(self, vector: int, mode: int = Delivery.FIXED, level: bool = False) -> None:
        """An interrupt message arrives (from the IOAPIC, an IPI or a local source)."""
        if not self.hw_enabled:
            return
        if mode == Delivery.NMI:
            self.nmi_pending += 1
            self.notify_pending()
            return
        if mode in (Delivery.INIT, Delivery.STARTUP, Delivery.SMI):
            self.init_requests += mode == Delivery.INIT
            self.unsupported_ipis += mode != Delivery.INIT
            return
        if mode == Delivery.EXTINT:
            self.extint_requested = True  # the vector comes from the 8259 at INTA
            self.notify_pending()
            return
        if not self.sw_enabled:
            return  # §11.4.7.2: a software-disabled APIC accepts no fixed interrupts
        vector &= 0xFF
        if vector < 16:
            self._error(Esr.RECEIVE_ILLEGAL_VECTOR)
            return
        self.irr |= 1 << vector
        if level:
            self.tmr |= 1 << vector
        else:
            self.tmr &= ~(1 << vector)
        self.notify_pending()

    def notify_pending(self) -> None:
        """Tell the board something may have become deliverable (``on_pending``)."""
        if self.on_pending is not None:
            self.on_pending()

    def matches(self, dest: int, logical: bool) -> bool:
        """Whether a message with this destination reaches this APIC (§11.6.2)."""
        if not self.hw_enabled:
            return False
        if self.x2apic:
            if not logical:
                return dest in (self.id, 0xFFFFFFFF)
            cluster, bits = dest >> 16, dest & 0xFFFF
            return dest == 0xFFFFFFFF or (cluster == self.id >> 4
                                          and bool(bits & 1 << (self.id & 0xF)))
        dest &= 0xFF
        if not logical:
            return dest in (self.id & 0xFF, 0xFF)
        if dest == 0xFF:
            return True
        ldr = self.ldr >> 24
        if self.dfr >> 28 == 0xF:  # flat model
            return bool(ldr & dest)
        return dest >> 4 == ldr >> 4 and bool(dest & ldr & 0xF)  # cluster model

    def _error(self, bit: int) -> None:
        self._esr_pending |= bit
        lvt = self.lvt[Reg.LVT_ERROR]
        vector = lvt & 0xFF
        if not lvt & LVT_MASKED and vector >= 16 and self.sw_enabled:
            self.irr |= 1 << vector
            self.tmr &= ~(1 << vector)

    # -- InterruptController --------------------------------------------------------------

    def _apic_vector(self) -> int | None:
        if not self.irr or not self.hw_enabled or not self.sw_enabled:
            return None
        vector = _highest(self.irr)
        if vector is None or (vector & 0xF0) <= (self.ppr & 0xF0):
            return None
        return vector

    def extint_active(self) -> bool:
        """The 8259's INTR reaches the CPU: APIC globally disabled, LINT0 an unmasked ExtINT,
        or an ExtINT message from the IOAPIC waiting."""
        if self.extint is None:
            return False
        if not self.hw_enabled or self.extint_requested:
            return True
        lint0 = self.lvt[Reg.LVT_LINT0]
        return not lint0 & LVT_MASKED and (lint0 >> 8 & 7) == Delivery.EXTINT

    def pending_vector(self) -> int | None:
        vector = self._apic_vector()
        if vector is not None:
            return vector
        # the 8259 pair keeps its INTR level up to date: a cheap "nothing there" first
        if getattr(self.extint, "intr_level", True) and self.extint_active():
            return self.extint.pending_vector()
        return None

    def acknowledge(self) -> int | None:
        vector = self._apic_vector()
        if vector is not None:
            self.irr &= ~(1 << vector)
            self.isr |= 1 << vector
            return vector
        if self.extint_active() and self.extint.pending_vector() is not None:
            self.extint_requested = False
            return self.extint.acknowledge()
        return None

    def take_nmi(self) -> bool:
        """The CPU takes the NMIs received since it last asked (from LINT1, an NMI IPI or
        the IOAPIC): its NMI latch holds one, so they collapse (SDM Vol. 3A §6.7.1)."""
        taken = self.nmi_pending > 0
        self.nmi_pending = 0
        return taken

    def set_lint(self, pin: int, level: bool) -> None:
        """LINT0/LINT1 input (edge-triggered use: NMI or fixed on a rising edge)."""
        lvt = self.lvt[Reg.LVT_LINT0 if pin == 0 else Reg.LVT_LINT1]
        if not level or lvt & LVT_MASKED:
            return
        mode = lvt >> 8 & 7
        if mode in (Delivery.FIXED, Delivery.NMI):
            self.accept(lvt & 0xFF, mode, bool(lvt & LVT_LEVEL) and pin == 0)

    # -- EOI, IPIs --------------------------------------------------------------------------

    def eoi(self) -> None:
        vector = _highest(self.isr)
        if vector is None:
            return
        self.isr &= ~(1 << vector)
        if _bit_get(self.tmr, vector) and self.eoi_broadcast is not None:
            self.eoi_broadcast(vector)
        self._priority_lowered()

    def _send_ipi(self, icr: int) -> None:
        """ICR write (§11.6.1): only this APIC exists; IPIs for others are counted."""
        vector, mode = icr & 0xFF, icr >> 8 & 7
        shorthand = icr >> ICR_SHORTHAND_SHIFT & 3
        if shorthand == SHORTHAND_NONE:
            dest = icr >> 32 if self.x2apic else icr >> 56
            to_self = self.matches(dest, bool(icr & ICR_DEST_LOGICAL))
        else:
            to_self = shorthand in (SHORTHAND_SELF, SHORTHAND_ALL)
        if mode in (Delivery.FIXED, Delivery.LOWEST) and vector < 16:
            self._error(Esr.SEND_ILLEGAL_VECTOR)
            return
        if shorthand in (SHORTHAND_ALL, SHORTHAND_OTHERS) or not to_self:
            self.unsupported_ipis += 1  # there are no other CPUs to reach
        if not to_self:
            return
        if mode in (Delivery.FIXED, Delivery.LOWEST, Delivery.NMI, Delivery.INIT):
            self.accept(vector, Delivery.FIXED if mode == Delivery.LOWEST else mode)
        else:
            self.unsupported_ipis += 1  # SMI, SIPI to self, ExtINT by IPI

    # -- timer (§11.5.4) ------------------------------------------------------------------

    @property
    def timer_mode(self) -> int:
        return self.lvt[Reg.LVT_TIMER] & LVT_TIMER_MODE

    @property
    def divisor(self) -> int:
        """Divide configuration bits 3, 1-0 (§11.5.4): 0b111 is divide by 1."""
        code = (self.timer_divide & 3) | (self.timer_divide >> 1 & 4)
        return 1 << ((code + 1) & 7)

    def _ticks_to_ns(self, ticks: int) -> int:
        """Guest ns for ``ticks`` timer ticks (bus clock / divisor), rounded up."""
        return -(-ticks * self.divisor * NS_PER_S // self.bus_hz)

    def _elapsed_ticks(self) -> int:
        elapsed_ns = max(0, self.timers.clock_ns() - self._timer_start)
        return elapsed_ns * self.bus_hz // (self.divisor * NS_PER_S)

    def _cancel_timer(self) -> None:
        if self._timer_event is not None:
            self._timer_event.cancel()
            self._timer_event = None

    @property
    def timer_current(self) -> int:
        if not self._timer_running or self.timer_mode == TIMER_TSC_DEADLINE:
            return 0
        elapsed = self._elapsed_ticks()
        if self.timer_mode == TIMER_PERIODIC:
            return self.timer_initial - elapsed % self.timer_initial
        return max(0, self.timer_initial - elapsed)

    def _start_count(self, initial: int) -> None:
        self._cancel_timer()
        self.timer_initial = initial
        self._timer_start = self.timers.clock_ns()
        self._timer_running = initial != 0
        if self._timer_running:
            self._arm(self._timer_start + self._ticks_to_ns(initial))

    def _arm(self, deadline_ns: int) -> None:
        self._cancel_timer()
        self._timer_event = self.timers.at(max(deadline_ns, self.timers.clock_ns()),
                                           self._on_timer)

    def _arm_next_period(self) -> None:
        """The end of the running period, but no sooner than MIN_PERIOD_NS from now."""
        now = self.timers.clock_ns()
        periods_done = self._elapsed_ticks() // self.timer_initial + 1
        deadline = self._timer_start + self._ticks_to_ns(periods_done * self.timer_initial)
        self._arm(max(deadline, now + MIN_PERIOD_NS))

    def _on_timer(self) -> None:
        self._timer_event = None
        self.timer_fired += 1
        lvt = self.lvt[Reg.LVT_TIMER]
        if not lvt & LVT_MASKED:
            self.accept(lvt & 0xFF)
        if self.timer_mode == TIMER_TSC_DEADLINE:
            self.tsc_deadline = 0  # the timer disarms itself (§11.5.4.1)
        elif self.timer_mode == TIMER_PERIODIC and self._timer_running:
            self._arm_next_period()
        else:
            self._timer_running = False

    def _set_divide(self, value: int) -> None:
        current = self.timer_current
        self.timer_divide = value & 0xB
        if self._timer_running and self.timer_mode != TIMER_TSC_DEADLINE:
            # keep the count where it is; it runs on at the new rate
            self._timer_start = self.timers.clock_ns() - self._ticks_to_ns(
                self.timer_initial - current)
            self._arm(self._timer_start + self._ticks_to_ns(self.timer_initial))

    def _set_lvt_timer(self, value: int) -> None:
        old_mode = self.timer_mode
        if old_mode == TIMER_PERIODIC and self._timer_running:
            # the count goes on from the current period: restart the one-shot view there
            periods = self._elapsed_ticks() // self.timer_initial
            self._timer_start += self._ticks_to_ns(periods * self.timer_initial)
        self.lvt[Reg.LVT_TIMER] = value
        new_mode = self.timer_mode
        if (old_mode == TIMER_TSC_DEADLINE) != (new_mode == TIMER_TSC_DEADLINE):
            # switching to or from TSC-deadline disarms the timer (§11.5.4.1); one-shot and
            # periodic switch over a running count (kvm-unit-tests apic "change mode")
            self._cancel_timer()
            self._timer_running = False
            self.timer_initial = 0
            self.tsc_deadline = 0
        elif self._timer_running and new_mode == TIMER_PERIODIC and self._timer_event is None:
            self._arm_next_period()

    def write_tsc_deadline(self, value: int) -> None:
        """IA32_TSC_DEADLINE: ignored unless the timer is in TSC-deadline mode."""
        if self.timer_mode != TIMER_TSC_DEADLINE or not self.hw_enabled:
            return
        self._cancel_timer()
        self.tsc_deadline = value & ((1 << 64) - 1)
        if self.tsc_deadline == 0:
            return
        delta_ns = -(-(self.tsc_deadline - self.read_tsc()) * NS_PER_S // self.tsc_hz)
        if delta_ns <= 0:
            self._on_timer()  # already due: pending before the next instruction
            return
        self._arm(self.timers.clock_ns() + delta_ns)

    def read_tsc_deadline(self) -> int:
        return self.tsc_deadline if self.timer_mode == TIMER_TSC_DEADLINE else 0

    # -- registers, shared by MMIO and MSR -----------------------------------------------

    def _read_reg(self, reg: int) -> int | None:
        """A register's 32-bit value, or None for a reserved offset."""
        if Reg.ISR <= reg < Reg.ISR + 0x80:
            return self.isr >> (32 * ((reg - Reg.ISR) >> 4)) & 0xFFFFFFFF
        if Reg.TMR <= reg < Reg.TMR + 0x80:
            return self.tmr >> (32 * ((reg - Reg.TMR) >> 4)) & 0xFFFFFFFF
        if Reg.IRR <= reg < Reg.IRR + 0x80:
            return self.irr >> (32 * ((reg - Reg.IRR) >> 4)) & 0xFFFFFFFF
        if reg in self.lvt:
            return self.lvt[reg]
        readers = {
            Reg.ID: lambda: self.id if self.x2apic else (self.id & 0xFF) << 24,
            Reg.VERSION: lambda: VERSION,
            Reg.TPR: lambda: self.tpr,
            Reg.APR: lambda: self.apr,
            Reg.PPR: lambda: self.ppr,
            Reg.EOI: lambda: 0,
            Reg.LDR: lambda: self._x2apic_ldr() if self.x2apic else self.ldr,
            Reg.DFR: lambda: self.dfr,
            Reg.SVR: lambda: self.svr,
            Reg.ESR: lambda: self.esr,
            Reg.ICR_LOW: lambda: self.icr & 0xFFFFFFFF,
            Reg.ICR_HIGH: lambda: self.icr >> 32,
            Reg.TIMER_INITIAL: lambda: self.timer_initial,
            Reg.TIMER_CURRENT: lambda: self.timer_current,
            Reg.TIMER_DIVIDE: lambda: self.timer_divide,
        }
        reader = readers.get(reg)
        return reader() if reader else None

    def _x2apic_ldr(self) -> int:
        """x2APIC logical ID (§11.12.10.2): cluster = ID[19:4], bit ID[3:0]."""
        return (self.id >> 4) << 16 | 1 << (self.id & 0xF)

    def _write_reg(self, reg: int, value: int) -> bool:
        """Write a 32-bit register (the ICR as 64 bits in x2APIC); False if reserved/RO."""
        value &= 0xFFFFFFFF if reg != Reg.ICR_LOW else (1 << 64) - 1
        if reg in self.lvt:
            value &= LVT_WRITABLE[reg]
            if not self.sw_enabled:
                value |= LVT_MASKED  # §11.4.7.2: masks cannot be cleared while disabled
            if reg == Reg.LVT_TIMER:
                self._set_lvt_timer(value)
            else:
                self.lvt[reg] = value
            return True
        if reg == Reg.ID:
            self.id = value >> 24
        elif reg == Reg.TPR:
            self.tpr = value & 0xFF
            self._priority_lowered()
        elif reg == Reg.EOI:
            self.eoi()
        elif reg == Reg.LDR:
            self.ldr = value & 0xFF000000
        elif reg == Reg.DFR:
            self.dfr = value | 0x0FFFFFFF
        elif reg == Reg.SVR:
            self.svr = value & SVR_WRITABLE
            if not self.sw_enabled:
                for lvt in LVT_REGS:
                    self.lvt[lvt] |= LVT_MASKED
        elif reg == Reg.ESR:
            self.esr, self._esr_pending = self._esr_pending, 0
        elif reg == Reg.ICR_LOW:
            if self.x2apic:
                self.icr = value & (0xFFFFFFFF << 32 | ICR_WRITABLE)
            else:
                self.icr = (self.icr & ~0xFFFFFFFF) | (value & ICR_WRITABLE)
            self._send_ipi(self.icr)
        elif reg == Reg.ICR_HIGH:
            self.icr = (self.icr & 0xFFFFFFFF) | (value & 0xFF000000) << 32
        elif reg == Reg.TIMER_INITIAL:
            if self.timer_mode != TIMER_TSC_DEADLINE:
                self._start_count(value)
        elif reg == Reg.TIMER_DIVIDE:
            self._set_divide(value)
        elif reg == Reg.SELF_IPI:
            self._send_ipi(value & 0xFF | SHORTHAND_SELF << ICR_SHORTHAND_SHIFT)
        else:
            return False
        return True

    # -- xAPIC MMIO ------------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        """A read of the xAPIC page (``offset`` within the 4 KiB page). Globally disabled or
        in x2APIC mode nothing answers: all ones, like any unclaimed address (§11.12.2;
        kvm-unit-tests apic "apic_disable" reads ~0)."""
        if self.x2apic or not self.hw_enabled:
            return (1 << (8 * max(0, min(size, 8)))) - 1
        reg, byte = offset & 0xFF0, offset & 0xF
        value = None
        if reg not in (Reg.SELF_IPI,):
            value = self._read_reg(reg)
        if value is None:
            self._error(Esr.ILLEGAL_REGISTER)
            value = 0
        if byte >= 4:
            return 0
        return value >> (8 * byte) & ((1 << (8 * max(0, min(size, 8)))) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if self.x2apic or not self.hw_enabled or size != 4 or offset & 0xF:
            return
        reg = offset & 0xFF0
        if reg in (Reg.VERSION, Reg.APR, Reg.PPR, Reg.RRD, Reg.TIMER_CURRENT, Reg.SELF_IPI) \
                or Reg.ISR <= reg < Reg.IRR + 0x80:
            return  # read-only registers ignore writes
        if not self._write_reg(reg, value):
            self._error(Esr.ILLEGAL_REGISTER)

    # -- x2APIC MSRs and IA32_APIC_BASE ------------------------------------------------

    X2APIC_READ_ONLY = frozenset((Reg.ID, Reg.VERSION, Reg.PPR, Reg.LDR, Reg.TIMER_CURRENT))
    X2APIC_ABSENT = frozenset((Reg.APR, Reg.RRD, Reg.DFR, Reg.ICR_HIGH))

    def handles_msr(self, msr: int) -> bool:
        return msr in (MSR_IA32_APIC_BASE, MSR_IA32_TSC_DEADLINE) or \
            X2APIC_MSR_FIRST <= msr <= X2APIC_MSR_LAST

    def _x2apic_reg(self, msr: int) -> int:
        if not self.x2apic:
            raise ApicFault(f"x2APIC MSR {msr:#x} outside x2APIC mode")
        reg = (msr - X2APIC_MSR_FIRST) << 4
        if reg in self.X2APIC_ABSENT:
            raise ApicFault(f"MSR {msr:#x} is not an x2APIC register")
        return reg

    def msr_read(self, msr: int) -> int:
        """RDMSR of IA32_APIC_BASE, IA32_TSC_DEADLINE or an x2APIC register."""
        if msr == MSR_IA32_APIC_BASE:
            return self.apic_base
        if msr == MSR_IA32_TSC_DEADLINE:
            return self.read_tsc_deadline()
        reg = self._x2apic_reg(msr)
        if reg in (Reg.EOI, Reg.SELF_IPI):
            raise ApicFault(f"x2APIC MSR {msr:#x} is write-only")
        if reg == Reg.ICR_LOW:
            return self.icr
        value = self._read_reg(reg)
        if value is None:
            raise ApicFault(f"MSR {msr:#x} is reserved")
        return value

    def msr_write(self, msr: int, value: int) -> None:
        """WRMSR; raises :class:`ApicFault` where the SDM gives #GP(0)."""
        value &= (1 << 64) - 1
        if msr == MSR_IA32_APIC_BASE:
            self._write_apic_base(value)
            return
        if msr == MSR_IA32_TSC_DEADLINE:
            self.write_tsc_deadline(value)
            return
        reg = self._x2apic_reg(msr)
        if reg in self.X2APIC_READ_ONLY or Reg.ISR <= reg < Reg.IRR + 0x80:
            raise ApicFault(f"x2APIC MSR {msr:#x} is read-only")
        if reg != Reg.ICR_LOW and value >> 32:
            raise ApicFault(f"reserved bits 63-32 set in x2APIC MSR {msr:#x}")
        if reg in (Reg.EOI, Reg.ESR) and value:
            raise ApicFault(f"nonzero write to x2APIC MSR {msr:#x}")
        if reg == Reg.TPR and value >> 8:
            raise ApicFault("reserved TPR bits")
        if reg == Reg.SELF_IPI and value >> 8:
            raise ApicFault("reserved SELF IPI bits")
        if not self._write_reg(reg, value):
            raise ApicFault(f"MSR {msr:#x} is reserved")

    def _write_apic_base(self, value: int) -> None:
        """IA32_APIC_BASE (§11.4.4; the x2APIC state transitions of §11.12.5)."""
        reserved = 0xFF | 1 << 9 | ~((1 << self.phys_addr_bits) - 1)
        if value & reserved & ~BASE_BSP:
            raise ApicFault("reserved IA32_APIC_BASE bits")
        en, extd = bool(value & BASE_EN), bool(value & BASE_EXTD)
        was_en, was_x2 = self.hw_enabled, self.x2apic
        if extd and not self.x2apic_supported:
            raise ApicFault("x2APIC not supported (CPUID)")
        if extd and not en:
            raise ApicFault("x2APIC enable without APIC enable")
        if was_x2 and en and not extd:
            raise ApicFault("x2APIC to xAPIC directly")
        if not was_en and en and extd:
            raise ApicFault("disabled to x2APIC directly")
        old_base = self.base
        self.apic_base = (value & ~BASE_BSP) | (BASE_BSP if self.bsp else 0)
        if was_en and not en:
            self.reset()  # disabling returns the APIC to its power-up state
        if not was_x2 and self.x2apic:
            self.id = self.initial_id  # the x2APIC ID; LDR derived from it
        if self.base != old_base and self.on_relocate is not None:
            self.on_relocate(old_base, self.base)

    # -- snapshot ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, int]:
        return {"id": self.id, "tpr": self.tpr, "ppr": self.ppr, "svr": self.svr,
                "irr": self.irr, "isr": self.isr, "tmr": self.tmr, "esr": self.esr,
                "apic_base": self.apic_base, "timer_initial": self.timer_initial,
                "timer_current": self.timer_current}
