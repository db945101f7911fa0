"""Local APIC: behaviour from Intel SDM Vol. 3A chapter 11 (sections cited per test)."""

from __future__ import annotations

import pytest

import dev_probe  # noqa: F401
from dev_platform import (
    FakeTimers,
    mmio_read,
    mmio_write,
    run_platform_on_chipset,
    run_platform_under_qemu,
    take,
)
from x86vm.devices.lapic import APIC_BASE_DEFAULT as A
from x86vm.devices.lapic import (
    ICR_WRITABLE,
    LVT_WRITABLE,
    MIN_PERIOD_NS,
    ApicFault,
    LocalApic,
    Reg,
)
from x86vm.machine.irq import PendingInterrupt

ENABLE = 0x1FF  # SVR: software enable, spurious vector 0xFF


@pytest.fixture
def timers():
    return FakeTimers()


@pytest.fixture
def apic(timers):
    a = LocalApic(timers, apic_id=3)
    a.eois = []
    a.eoi_broadcast = a.eois.append
    return a


def r(a, reg):
    return a.read(reg, 4)


def w(a, reg, value):
    a.write(reg, 4, value)


def enabled(a):
    w(a, Reg.SVR, ENABLE)
    return a


def test_reset_values(apic):
    """§11.4.7.1: DFR all ones, SVR 0xFF, LVTs masked, ID set; firmware's virtual wire mode
    (MP spec §3.6.2.2) makes LINT0 ExtINT and LINT1 NMI."""
    assert r(apic, Reg.ID) == 3 << 24
    assert r(apic, Reg.VERSION) == 0x00050014
    assert (r(apic, Reg.DFR), r(apic, Reg.SVR), r(apic, Reg.TPR)) == (0xFFFFFFFF, 0xFF, 0)
    for reg in (Reg.LVT_TIMER, Reg.LVT_THERMAL, Reg.LVT_PERF, Reg.LVT_LINT0, Reg.LVT_LINT1,
                Reg.LVT_ERROR):
        assert r(apic, reg) == 0x10000
    apic.virtual_wire()  # what SeaBIOS leaves (QEMU 7.2 monitor, "info lapic")
    assert (r(apic, Reg.LVT_LINT0), r(apic, Reg.LVT_LINT1), r(apic, Reg.SVR)) == \
        (0x8700, 0x8400, 0x1FF)
    assert apic.msr_read(0x1B) == 0xFEE00900  # base, EN, BSP


def test_software_disabled_keeps_lvt_masked(apic):
    """§11.4.7.2: while SVR bit 8 is clear, LVT mask bits stay set."""
    w(apic, Reg.LVT_TIMER, 0x30)
    assert r(apic, Reg.LVT_TIMER) == 0x10030
    enabled(apic)
    w(apic, Reg.LVT_TIMER, 0x30)
    assert r(apic, Reg.LVT_TIMER) == 0x30
    w(apic, Reg.SVR, 0xFF)
    assert r(apic, Reg.LVT_TIMER) == 0x10030


@pytest.mark.parametrize("tpr,isr_vector,ppr", [(0x30, 0x51, 0x50), (0x65, 0x51, 0x65),
                                                (0x50, 0x5F, 0x50), (0x00, None, 0x00)])
def test_ppr(apic, tpr, isr_vector, ppr):
    """§11.8.3.1: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4."""
    enabled(apic)
    if isr_vector is not None:
        apic.accept(isr_vector)
        apic.acknowledge()
    w(apic, Reg.TPR, tpr)
    assert r(apic, Reg.PPR) == ppr


def test_delivery_priority_and_eoi(apic):
    """§11.8.4: the highest IRR class above PPR is delivered; INTA moves IRR to ISR; EOI
    clears the highest ISR bit (§11.8.5); a level vector's EOI is broadcast to the IOAPIC."""
    enabled(apic)
    apic.accept(0x41)
    apic.accept(0x62, level=True)
    assert apic.pending_vector() == 0x62 and apic.acknowledge() == 0x62
    assert apic.pending_vector() is None  # 0x41's class is below the in-service 0x62
    assert r(apic, Reg.ISR + 0x30) == 1 << 2 and r(apic, Reg.TMR + 0x30) == 1 << 2
    w(apic, Reg.EOI, 0)
    assert apic.eois == [0x62] and apic.acknowledge() == 0x41
    w(apic, Reg.EOI, 0)
    assert apic.eois == [0x62]  # edge vector: no broadcast


def test_tpr_blocks_and_cr8(apic):
    """§11.8.6: CR8 holds TPR[7:4]."""
    enabled(apic)
    apic.cr8 = 5
    assert r(apic, Reg.TPR) == 0x50
    apic.accept(0x55)
    assert apic.pending_vector() is None
    apic.cr8 = 4
    assert apic.pending_vector() == 0x55


def test_illegal_vector_and_esr_write_before_read(apic):
    """§11.5.3: vectors 0-15 are illegal; ESR shows errors only after a write to it."""
    enabled(apic)
    w(apic, Reg.LVT_ERROR, 0xE0)
    w(apic, Reg.ICR_LOW, 0x40003)  # fixed, vector 3, to self
    assert r(apic, Reg.ESR) == 0
    w(apic, Reg.ESR, 0)
    assert r(apic, Reg.ESR) == 0x20
    assert apic.pending_vector() == 0xE0  # the error LVT interrupt
    apic.accept(5)
    w(apic, Reg.ESR, 0)
    assert r(apic, Reg.ESR) == 0x40
    w(apic, Reg.ESR, 0)
    assert r(apic, Reg.ESR) == 0


def test_self_ipi_by_shorthand_and_destination(apic):
    """§11.6.1: ICR shorthand 01 = self; physical destination = own ID; NMI to self."""
    enabled(apic)
    w(apic, Reg.ICR_LOW, 0x40031)
    assert apic.acknowledge() == 0x31
    w(apic, Reg.EOI, 0)
    w(apic, Reg.ICR_HIGH, 3 << 24)
    w(apic, Reg.ICR_LOW, 0x00032)
    assert apic.acknowledge() == 0x32
    w(apic, Reg.ICR_LOW, 0x40400)  # NMI
    assert apic.take_nmi() and not apic.take_nmi()
    before = apic.unsupported_ipis
    w(apic, Reg.ICR_LOW, 0xC0033)  # all excluding self: nobody here
    assert apic.unsupported_ipis == before + 1 and apic.pending_vector() is None
    assert r(apic, Reg.ICR_LOW) & 0x1000 == 0  # delivery status: idle


def test_logical_destination_flat_and_cluster(apic):
    """§11.6.2.2: flat model matches LDR bits; cluster model matches cluster and member."""
    w(apic, Reg.LDR, 0x04000000)
    assert apic.matches(0x06, logical=True) and not apic.matches(0x08, logical=True)
    w(apic, Reg.DFR, 0x0FFFFFFF)
    assert r(apic, Reg.DFR) == 0x0FFFFFFF
    w(apic, Reg.LDR, 0x21000000)
    assert apic.matches(0x21, True) and not apic.matches(0x11, True)
    assert apic.matches(3, False) and apic.matches(0xFF, False) and not apic.matches(4, False)


@pytest.mark.parametrize("dcr,divisor", [(0x0, 2), (0x1, 4), (0x2, 8), (0x3, 16), (0x8, 32),
                                         (0x9, 64), (0xA, 128), (0xB, 1)])
def test_divide_configuration(apic, dcr, divisor):
    """§11.5.4: divide configuration bits 3, 1-0."""
    w(apic, Reg.TIMER_DIVIDE, dcr)
    assert apic.divisor == divisor and r(apic, Reg.TIMER_DIVIDE) == dcr


def test_one_shot_timer(apic, timers):
    """§11.5.4: the count runs down at bus clock / divisor and interrupts once at zero."""
    enabled(apic)
    w(apic, Reg.TIMER_DIVIDE, 0x0)  # / 2
    w(apic, Reg.LVT_TIMER, 0x40)
    w(apic, Reg.TIMER_INITIAL, 1000)
    timers.advance(1000)
    assert r(apic, Reg.TIMER_CURRENT) == 500 and apic.pending_vector() is None
    timers.advance(1000)
    assert apic.acknowledge() == 0x40 and r(apic, Reg.TIMER_CURRENT) == 0
    timers.advance(100_000)
    assert apic.timer_fired == 1


def test_periodic_timer_reloads(apic, timers):
    enabled(apic)
    w(apic, Reg.TIMER_DIVIDE, 0xB)
    w(apic, Reg.LVT_TIMER, 0x20041)
    w(apic, Reg.TIMER_INITIAL, 100_000)
    timers.advance(350_000)
    assert apic.timer_fired == 3 and r(apic, Reg.TIMER_CURRENT) == 50_000
    w(apic, Reg.TIMER_INITIAL, 0)  # a zero count stops it
    timers.advance(1_000_000)
    assert apic.timer_fired == 3


def test_periodic_to_one_shot_runs_out(apic, timers):
    """A mode change between one-shot and periodic keeps the running count
    (kvm-unit-tests apic 'change mode' expects it)."""
    enabled(apic)
    w(apic, Reg.TIMER_DIVIDE, 0xB)
    w(apic, Reg.LVT_TIMER, 0x20041)
    w(apic, Reg.TIMER_INITIAL, 100_000)
    timers.advance(260_000)
    w(apic, Reg.LVT_TIMER, 0x00041)
    assert r(apic, Reg.TIMER_CURRENT) == 40_000
    timers.advance(50_000)
    assert r(apic, Reg.TIMER_CURRENT) == 0
    fired = apic.timer_fired
    timers.advance(500_000)
    assert apic.timer_fired == fired


def test_tsc_deadline(apic, timers):
    """§11.5.4.1: TSC-deadline mode ignores the initial count; the MSR arms, fires once and
    reads 0 afterwards; leaving the mode disarms."""
    enabled(apic)
    w(apic, Reg.LVT_TIMER, 0x40050)
    w(apic, Reg.TIMER_INITIAL, 5)
    assert r(apic, Reg.TIMER_INITIAL) == 0
    apic.msr_write(0x6E0, 20_000)
    assert apic.msr_read(0x6E0) == 20_000
    timers.advance(19_999)
    assert apic.pending_vector() is None
    timers.advance(1)
    assert apic.acknowledge() == 0x50 and apic.msr_read(0x6E0) == 0
    apic.msr_write(0x6E0, 40_000)
    w(apic, Reg.LVT_TIMER, 0x00050)
    timers.advance(100_000)
    assert apic.timer_fired == 1 and apic.msr_read(0x6E0) == 0


def test_tsc_deadline_in_the_past_fires_at_once(apic, timers):
    """kvm-unit-tests apic "tsc deadline timer": a deadline of 'now' is pending right after
    the WRMSR, and the MSR reads 0."""
    enabled(apic)
    timers.advance(5_000)
    w(apic, Reg.LVT_TIMER, 0x400EF)
    apic.msr_write(0x6E0, apic.read_tsc())
    assert apic.pending_vector() == 0xEF and apic.msr_read(0x6E0) == 0


def test_x2apic_unsupported_refuses_extd(timers):
    a = LocalApic(timers, x2apic_supported=False)
    with pytest.raises(ApicFault):
        a.msr_write(0x1B, 0xFEE00C00)


def test_timer_storm_is_bounded(apic, timers):
    """Periodic, count 1, divide by 1 (1 ns): callbacks coalesce to one per MIN_PERIOD_NS."""
    enabled(apic)
    w(apic, Reg.TIMER_DIVIDE, 0xB)
    w(apic, Reg.LVT_TIMER, 0x20040)
    w(apic, Reg.TIMER_INITIAL, 1)
    ran = timers.advance(5_000_000)
    assert ran <= 5_000_000 // MIN_PERIOD_NS + 1
    assert apic.pending_vector() == 0x40


def test_masked_timer_counts_without_interrupt(apic, timers):
    enabled(apic)
    w(apic, Reg.LVT_TIMER, 0x10040)
    w(apic, Reg.TIMER_DIVIDE, 0xB)
    w(apic, Reg.TIMER_INITIAL, 10)
    timers.advance(100)
    assert apic.timer_fired == 1 and apic.pending_vector() is None


def test_extint_pass_through(timers):
    """LINT0 as ExtINT (or a globally disabled APIC) hands the CPU the 8259's vector."""
    pic = PendingInterrupt()
    a = LocalApic(timers, extint=pic)
    pic.raise_vector(0x08)
    assert a.pending_vector() is None  # reset: LINT0 masked
    a.virtual_wire()
    assert a.pending_vector() == 0x08
    a.write(Reg.LVT_LINT0, 4, 0x10700)  # masked
    assert a.pending_vector() is None
    a.msr_write(0x1B, 0xFEE00000)  # globally disabled: LINT0 is the INTR pin
    assert a.acknowledge() == 0x08 and pic.taken == [0x08]


def test_ioapic_extint_message(timers):
    pic = PendingInterrupt()
    a = enabled(LocalApic(timers, extint=pic))
    a.write(Reg.LVT_LINT0, 4, 0x10700)
    pic.raise_vector(0x09)
    assert a.pending_vector() is None
    a.accept(0, mode=7)
    assert a.acknowledge() == 0x09


def test_x2apic_mode(apic):
    """§11.12: EXTD switches to the MSR interface; ID is 32-bit and read only, LDR derived
    (§11.12.10.2), the MMIO page is inert."""
    enabled(apic)
    with pytest.raises(ApicFault):
        apic.msr_read(0x802)  # not in x2APIC mode yet
    apic.msr_write(0x1B, 0xFEE00C00)
    assert apic.msr_read(0x802) == 3 and apic.msr_read(0x80D) == 1 << 3
    assert apic.read(Reg.VERSION, 4) == 0xFFFFFFFF
    assert apic.msr_read(0x803) == 0x00050014
    apic.msr_write(0x83F, 0x45)  # SELF IPI
    assert apic.acknowledge() == 0x45
    apic.msr_write(0x80B, 0)
    apic.msr_write(0x830, 3 << 32 | 0x46)
    assert apic.acknowledge() == 0x46 and apic.msr_read(0x830) == 3 << 32 | 0x46


@pytest.mark.parametrize("action", [
    lambda a: a.msr_read(0x809),  # APR: not an x2APIC register
    lambda a: a.msr_read(0x80E),  # DFR
    lambda a: a.msr_read(0x831),  # ICR high
    lambda a: a.msr_read(0x80B),  # EOI is write-only
    lambda a: a.msr_write(0x80B, 1),  # nonzero EOI
    lambda a: a.msr_write(0x828, 1),  # nonzero ESR
    lambda a: a.msr_write(0x802, 0),  # ID is read-only
    lambda a: a.msr_write(0x808, 0x100),  # TPR reserved bits
    lambda a: a.msr_write(0x80F, 1 << 32),  # upper half reserved
    lambda a: a.msr_write(0x1B, 0xFEE00800),  # x2APIC -> xAPIC
])
def test_x2apic_faults(apic, action):
    """§11.12.1.2/§11.12.1.3/§11.12.5: #GP for absent, read-only, write-only registers,
    reserved bits and invalid mode transitions."""
    apic.msr_write(0x1B, 0xFEE00C00)
    with pytest.raises(ApicFault):
        action(apic)


def test_apic_base_transitions(apic):
    """§11.12.5: disabled -> x2APIC directly and EXTD without EN are invalid; disabling
    resets the APIC; the base moves."""
    moved = []
    apic.on_relocate = lambda old, new: moved.append((old, new))
    w(apic, Reg.TPR, 0x20)
    apic.msr_write(0x1B, 0xFEE00000)
    assert apic.read(Reg.TPR, 4) == 0xFFFFFFFF and apic.tpr == 0  # page inert, state reset
    with pytest.raises(ApicFault):
        apic.msr_write(0x1B, 0xFEE00C00)
    with pytest.raises(ApicFault):
        apic.msr_write(0x1B, 0xFEE00400)
    with pytest.raises(ApicFault):
        apic.msr_write(0x1B, 0xFEE00801)  # reserved bit 0
    with pytest.raises(ApicFault):
        apic.msr_write(0x1B, 1 << 40 | 0xFEE00800)  # above MAXPHYADDR (40)
    apic.msr_write(0x1B, 0xFED00800)
    assert moved == [(0xFEE00000, 0xFED00000)] and apic.base == 0xFED00000


def test_mmio_access_widths(apic):
    """32-bit aligned accesses; narrower reads give the register's bytes, other writes
    are ignored; reserved offsets set ESR bit 7 (illegal register address)."""
    assert apic.read(Reg.ID + 3, 1) == 3
    apic.write(Reg.TPR, 2, 0x40)
    apic.write(Reg.TPR + 4, 4, 0x40)
    assert r(apic, Reg.TPR) == 0
    w(apic, Reg.VERSION, 0)
    assert r(apic, Reg.VERSION) == 0x00050014
    r(apic, 0x050)
    w(apic, Reg.ESR, 0)
    assert r(apic, Reg.ESR) == 0x80


def test_lint1_nmi(apic):
    enabled(apic)
    w(apic, Reg.LVT_LINT1, 0x400)
    apic.set_lint(1, True)
    assert apic.take_nmi()


# -- QEMU 7.2, byte for byte (MMIO from unreal mode, see dev_platform.py) --------------------
# QEMU stores LVT and ICR words whole and has no APR (reads 0), no ESR send/receive errors and
# no TSC-deadline rules for the initial count: reads are masked to the SDM's writable bits,
# APR and ESR are not compared, and the timer probe stays out of TSC-deadline mode.


MASKS = {Reg.APR: 0, Reg.ESR: 0, Reg.ICR_LOW: ICR_WRITABLE | 0x1000, Reg.ICR_HIGH: 0xFF000000,
         Reg.TIMER_CURRENT: 0xFFFFFF00, **{reg: mask for reg, mask in
                                          LVT_WRITABLE.items()}}
ALL_REGS = ([Reg.ID, Reg.VERSION, Reg.TPR, Reg.APR, Reg.PPR, Reg.LDR, Reg.DFR, Reg.SVR]
            + [Reg.ISR + 16 * i for i in range(8)] + [Reg.TMR + 16 * i for i in range(8)]
            + [Reg.IRR + 16 * i for i in range(8)]
            + [Reg.ESR, Reg.ICR_LOW, Reg.ICR_HIGH, *LVT_WRITABLE, Reg.TIMER_INITIAL,
               Reg.TIMER_CURRENT, Reg.TIMER_DIVIDE])
RW_REGS = [Reg.ID, Reg.TPR, Reg.LDR, Reg.DFR, Reg.ICR_HIGH, *LVT_WRITABLE, Reg.TIMER_DIVIDE]


def rd(reg):
    return mmio_read(A + reg, mask=MASKS.get(reg))


def wr(reg, value):
    return mmio_write(A + reg, value)


def timer_regs():
    return [rd(Reg.TIMER_INITIAL), rd(Reg.TIMER_CURRENT), rd(Reg.TIMER_DIVIDE),
            rd(Reg.LVT_TIMER)]


QEMU_SCENARIOS = {
    "reset": [rd(r) for r in ALL_REGS],
    "writable_bits_disabled": [wr(r, 0xFFFFFFFF) for r in RW_REGS] + [wr(Reg.SVR, 0xFFFFFEFF)]
    + [rd(r) for r in ALL_REGS],
    "writable_bits_enabled": [wr(Reg.SVR, 0x1FF)] + [wr(r, 0xFFFFFFFF) for r in RW_REGS]
    + [rd(r) for r in ALL_REGS] + [wr(Reg.SVR, 0xFFFFFFFF), rd(Reg.SVR)],
    "self_ipi_priorities_eoi": [wr(Reg.SVR, 0x1FF), wr(Reg.ICR_LOW, 0x40045),
                                wr(Reg.ICR_LOW, 0x40063), wr(Reg.ICR_LOW, 0x40031)]
    + [rd(Reg.IRR + 16 * i) for i in range(8)] + [rd(Reg.PPR), wr(Reg.TPR, 0x50), rd(Reg.PPR),
                                                  take()]
    + [rd(Reg.ISR + 16 * i) for i in range(8)] + [rd(Reg.IRR + 16 * i) for i in range(8)]
    + [rd(Reg.PPR), wr(Reg.EOI, 0), rd(Reg.PPR), wr(Reg.TPR, 0), take()]
    + [rd(Reg.ISR + 16 * i) for i in range(8)] + [rd(Reg.PPR), wr(Reg.EOI, 0), wr(Reg.EOI, 0),
                                                  rd(Reg.ISR + 0x30), rd(Reg.PPR)],
    "physical_and_logical_self_ipi": [wr(Reg.SVR, 0x1FF), wr(Reg.ICR_HIGH, 0), wr(Reg.ICR_LOW,
                                                                                0x51)]
    + [wr(Reg.LDR, 0x01000000), wr(Reg.ICR_HIGH, 0x03000000), wr(Reg.ICR_LOW, 0x852),
       wr(Reg.ICR_HIGH, 0x02000000), wr(Reg.ICR_LOW, 0x853), wr(Reg.ICR_HIGH, 0x01000000),
       wr(Reg.ICR_LOW, 0x54), rd(Reg.IRR + 0x50)],
    "timer_one_shot_periodic_divide": [wr(Reg.SVR, 0x1FF), wr(Reg.TIMER_DIVIDE, 0xA),
                                       wr(Reg.LVT_TIMER, 0x10040),
                                       wr(Reg.TIMER_INITIAL, 0x123456)]
    + timer_regs() + [wr(Reg.LVT_TIMER, 0x30040)] + timer_regs()
    + [wr(Reg.TIMER_INITIAL, 0x777777), wr(Reg.TIMER_DIVIDE, 0xFF)] + timer_regs()
    + [wr(Reg.TIMER_INITIAL, 0)] + timer_regs(),
}


@pytest.mark.oracle("qemu", "binutils")
@pytest.mark.parametrize("name", sorted(QEMU_SCENARIOS))
def test_lapic_matches_qemu(tmp_path, name):
    ops = QEMU_SCENARIOS[name]
    assert run_platform_on_chipset(ops).hex(" ") == run_platform_under_qemu(ops, tmp_path).hex(" ")


# -- the timer over guest time (QEMU 7.2, -icount shift=0: 1 ns per instruction) -------------
# QEMU's periodic count runs initial..0, a period of initial + 1 counts (2344 counts into a
# 1000-count period it reads 658; x86vm, like KVM, reloads at 0: 656), and a divide change
# there does not rescale a running count (KVM's and x86vm's does): those are not compared.

from dev_platform import delay  # noqa: E402

CURRENT = mmio_read(A + Reg.TIMER_CURRENT)
IRR_40 = mmio_read(A + Reg.IRR + 0x40)
TIMED = {
    "one_shot_counts_and_fires": [wr(Reg.SVR, 0x1FF), wr(Reg.TIMER_DIVIDE, 0xA),
                                  wr(Reg.LVT_TIMER, 0x48), wr(Reg.TIMER_INITIAL, 1000),
                                  delay(50_064), CURRENT, IRR_40, delay(78_000), CURRENT,
                                  IRR_40, take(), mmio_read(A + Reg.ISR + 0x40)],
    "periodic_fires_again": [wr(Reg.SVR, 0x1FF), wr(Reg.TIMER_DIVIDE, 0xB),
                             wr(Reg.LVT_TIMER, 0x20048), wr(Reg.TIMER_INITIAL, 20_000),
                             delay(30_000), IRR_40, take(), wr(Reg.EOI, 0), IRR_40,
                             delay(20_000), IRR_40],
    "masked_timer_counts_silently": [wr(Reg.SVR, 0x1FF), wr(Reg.TIMER_DIVIDE, 0xA),
                                     wr(Reg.LVT_TIMER, 0x10048), wr(Reg.TIMER_INITIAL, 100),
                                     delay(20_000), CURRENT, IRR_40],
}


@pytest.mark.skipif(not (QEMU and TOOLS), reason="needs qemu-system-x86_64 and GNU as/ld")
@pytest.mark.parametrize("name", sorted(TIMED))
def test_lapic_timer_matches_qemu(tmp_path, name):
    ops = TIMED[name]
    assert run_platform_on_chipset(ops).hex(" ") == run_platform_under_qemu(ops, tmp_path).hex(" ")
