"""8259A pair: behaviour from the 8259A datasheet (sections cited per test), and the same
port sequences compared byte for byte with QEMU 7.2's i8259 (pc-testdev drives the IRQs)."""

from __future__ import annotations

import pytest

from dev_platform import LINUX_INIT, irq, pic_regs, poll, run_both
from dev_probe import inp, out, run_on_bus
from x86vm.devices.i8259 import Pic8259Pair
from x86vm.machine.bus import PortBus
from x86vm.machine.irq import NullIrqLine


@pytest.fixture
def pair():
    intr = NullIrqLine()
    p = Pic8259Pair(intr)
    bus = PortBus()
    p.register(bus)
    p.bus = bus
    for port, value in ((0x20, 0x11), (0xA0, 0x11), (0x21, 0x20), (0xA1, 0x28), (0x21, 4),
                        (0xA1, 2), (0x21, 1), (0xA1, 1), (0x21, 0), (0xA1, 0)):
        bus.write(port, 1, value)
    return p


def wr(p, port, value):
    p.bus.write(port, 1, value)


def rd(p, port):
    return p.bus.read(port, 1)


def isr(p, base=0x20):
    wr(p, base, 0x0B)
    value = rd(p, base)
    wr(p, base, 0x0A)
    return value


def test_inta_sets_isr_and_clears_edge_irr(pair):
    """"Interrupt Sequence": the INTA pulse sets ISR and resets the IRR bit."""
    pair.set_irq(3, True)
    assert pair.intr.level and pair.pending_vector() == 0x23
    assert pair.acknowledge() == 0x23
    assert (rd(pair, 0x20), isr(pair)) == (0x00, 0x08)
    assert not pair.intr.level  # IR3 in service blocks itself and lower levels
    pair.set_irq(1, True)  # higher priority interrupts the service routine
    assert pair.acknowledge() == 0x21
    wr(pair, 0x20, 0x20)  # non-specific EOI clears the highest ISR bit (IR1)
    assert isr(pair) == 0x08


def test_fully_nested_blocks_lower_and_equal(pair):
    """"Fully Nested Mode": while IR3 is in service, IR3..IR7 requests wait."""
    pair.set_irq(3, True)
    pair.acknowledge()
    pair.set_irq(5, True)
    assert pair.pending_vector() is None
    wr(pair, 0x20, 0x63)  # specific EOI, level 3
    assert pair.pending_vector() == 0x25


def test_edge_needs_a_new_rising_edge(pair):
    """"Edge Triggered Mode": the IR input can remain high without another interrupt."""
    pair.set_irq(4, True)
    pair.acknowledge()
    wr(pair, 0x20, 0x20)
    assert pair.pending_vector() is None
    pair.set_irq(4, False)
    pair.set_irq(4, True)
    assert pair.pending_vector() == 0x24


def test_level_request_withdrawn_before_inta_gives_ir7(pair):
    """"Interrupt Sequence"/"Edge and level triggered modes": a request gone before INTA
    yields IR7's vector, without setting ISR."""
    wr(pair, 0x4D0, 0x20)
    pair.set_irq(5, True)
    assert pair.pending_vector() == 0x25
    pair.set_irq(5, False)
    assert pair.pending_vector() is None
    assert pair.acknowledge() == 0x27
    assert isr(pair) == 0 and pair.spurious == 1


def test_slave_spurious_is_ir15(pair):
    wr(pair, 0x4D1, 0x04)  # IRQ 10 level-triggered
    pair.set_irq(10, True)
    assert pair.pending_vector() == 0x2A
    pair.set_irq(10, False)  # master IR2 stays latched (edge) but the slave has nothing
    assert pair.acknowledge() == 0x2F
    assert (isr(pair), isr(pair, 0xA0)) == (0x04, 0x00)


def test_level_reasserts_after_eoi(pair):
    wr(pair, 0x4D0, 0x20)
    pair.set_irq(5, True)
    assert pair.acknowledge() == 0x25
    wr(pair, 0x20, 0x20)
    assert pair.pending_vector() == 0x25  # still high: requested again


def test_ltim_makes_every_input_level_triggered(pair):
    """ICW1 LTIM (D3): level-triggered mode for all inputs (QEMU ignores LTIM)."""
    for port, value in ((0x20, 0x19), (0x21, 0x20), (0x21, 4), (0x21, 1)):
        wr(pair, port, value)
    pair.set_irq(6, True)
    assert rd(pair, 0x20) & 0x40
    pair.set_irq(6, False)
    assert not rd(pair, 0x20) & 0x40


def test_imr_masks_and_reads_back(pair):
    """OCW1: IMR bits mask the corresponding IR; IMR reads at A0 = 1."""
    wr(pair, 0x21, 0xF7)
    pair.set_irq(1, True)
    assert pair.pending_vector() is None and rd(pair, 0x21) == 0xF7
    assert rd(pair, 0x20) == 0x02  # IRR latches masked requests
    wr(pair, 0x21, 0x00)
    assert pair.pending_vector() == 0x21


def test_rotation_on_non_specific_eoi(pair):
    """OCW2 R SL EOI = 101: the serviced level becomes the lowest priority."""
    for n in (3, 4):
        pair.set_irq(n, True)
    assert pair.acknowledge() == 0x23
    wr(pair, 0x20, 0xA0)
    pair.set_irq(3, False)
    pair.set_irq(3, True)
    assert pair.pending_vector() == 0x24  # IR4 now outranks IR3


def test_set_priority_command(pair):
    """OCW2 110: L2-L0 becomes the lowest priority level."""
    wr(pair, 0x20, 0xC5)  # IR5 lowest -> IR6 highest
    for n in (1, 6):
        pair.set_irq(n, True)
    assert pair.acknowledge() == 0x26


def test_auto_eoi_and_rotate_in_aeoi(pair):
    """ICW4 AEOI: ISR is not set; OCW2 100 rotates on every automatic EOI."""
    for port, value in ((0x20, 0x11), (0x21, 0x20), (0x21, 4), (0x21, 3), (0x21, 0)):
        wr(pair, port, value)
    wr(pair, 0x20, 0x80)
    pair.set_irq(2 + 1, True)
    pair.set_irq(5, True)
    assert pair.acknowledge() == 0x23 and isr(pair) == 0
    pair.set_irq(3, False)
    pair.set_irq(3, True)
    assert pair.acknowledge() == 0x25  # IR3 rotated to lowest


def test_special_mask_mode(pair):
    """OCW3 ESMM SMM: masking the in-service level lets lower levels through."""
    pair.set_irq(3, True)
    pair.acknowledge()
    pair.set_irq(5, True)
    assert pair.pending_vector() is None
    wr(pair, 0x21, 0x08)
    wr(pair, 0x20, 0x68)
    assert pair.pending_vector() == 0x25
    wr(pair, 0x20, 0x48)  # reset special mask
    assert pair.pending_vector() is None


def test_special_fully_nested_lets_slave_nest(pair):
    """ICW4 SFNM on the master: a higher slave request interrupts while IR2 is in service."""
    for port, value in ((0x20, 0x11), (0x21, 0x20), (0x21, 4), (0x21, 0x11), (0x21, 0)):
        wr(pair, port, value)
    pair.set_irq(12, True)
    assert pair.acknowledge() == 0x2C
    pair.set_irq(9, True)
    assert pair.acknowledge() == 0x29  # without SFNM the master's ISR2 would block it


def test_poll_command(pair):
    """OCW3 P: the next read returns I (bit 7) and the level, acting as INTA."""
    assert poll_word(pair) == 0x00
    pair.set_irq(6, True)
    assert poll_word(pair) == 0x86 and isr(pair) == 0x40


def poll_word(p):
    wr(p, 0x20, 0x0C)
    return rd(p, 0x20)


def test_elcr_masks_edge_only_irqs(pair):
    """PIIX ELCR: IRQ 0, 1, 2, 8, 13 are always edge-triggered."""
    wr(pair, 0x4D0, 0xFF)
    wr(pair, 0x4D1, 0xFF)
    assert (rd(pair, 0x4D0), rd(pair, 0x4D1)) == (0xF8, 0xDE)


def test_icw1_resets_state(pair):
    """ICW1 clears IMR and ISR, rotation, special mask; IRR is read next."""
    wr(pair, 0x21, 0x55)
    pair.set_irq(3, True)
    pair.acknowledge()
    wr(pair, 0x20, 0x0B)
    wr(pair, 0x20, 0x11)
    assert (rd(pair, 0x20), rd(pair, 0x21)) == (0x00, 0x00)


def test_unknown_irq_is_refused():
    with pytest.raises(ValueError):
        Pic8259Pair().set_irq(16, True)


# -- QEMU 7.2, byte for byte --------------------------------------------------------------

SCENARIOS = {
    "reset_and_elcr": [inp(0x20, mask=0xFE), inp(0x21), inp(0xA0), inp(0xA1), inp(0x4D0),
                       inp(0x4D1), out(0x4D0, 0xFF), out(0x4D1, 0xFF), inp(0x4D0), inp(0x4D1),
                       out(0x4D0, 0x28), inp(0x4D0)],
    "edge_poll_eoi": LINUX_INIT + pic_regs() + [irq(3, 1)] + pic_regs() + poll() + pic_regs()
    + poll() + [out(0x20, 0x20)] + pic_regs() + [irq(3, 0)] + pic_regs(),
    "edge_pulse_latched": LINUX_INIT + [irq(4, 1), irq(4, 0)] + pic_regs() + poll()
    + pic_regs() + [out(0x20, 0x64)] + pic_regs(),
    "level_elcr": LINUX_INIT + [out(0x4D0, 0x20), irq(5, 1)] + pic_regs() + [irq(5, 0)]
    + pic_regs() + poll() + [irq(5, 1)] + poll() + pic_regs() + [out(0x20, 0x20)] + pic_regs()
    + poll() + pic_regs(),
    "slave_cascade": LINUX_INIT + [irq(10, 1)] + pic_regs() + poll() + pic_regs() + poll(0xA0)
    + pic_regs() + [out(0xA0, 0x20), out(0x20, 0x20)] + pic_regs()
    + [irq(10, 0), irq(12, 1), irq(9, 1)] + pic_regs() + poll(0xA0) + poll() + pic_regs(),
    "slave_spurious": LINUX_INIT + [out(0x4D1, 0x04), irq(10, 1), irq(10, 0)] + pic_regs()
    + poll() + poll(0xA0) + pic_regs() + [out(0xA1, 0x10), irq(12, 1), out(0xA1, 0xFF)]
    + pic_regs() + poll() + pic_regs(),
    "rotation": LINUX_INIT + [irq(3, 1), irq(4, 1), irq(6, 1)] + poll() + [out(0x20, 0xA0)]
    + [irq(3, 0), irq(3, 1)] + poll() + poll() + pic_regs() + [out(0x20, 0xA0), out(0x20, 0xA0)]
    + pic_regs() + poll() + [out(0x20, 0xC5), irq(3, 0), irq(3, 1), irq(6, 0), irq(6, 1)]
    + poll() + pic_regs() + [out(0x20, 0xE6)] + pic_regs(),
    "special_mask": LINUX_INIT + [irq(3, 1)] + poll() + [irq(5, 1)] + poll()
    + [out(0x21, 0x09), out(0x20, 0x68)] + pic_regs() + poll() + pic_regs() + [out(0x20, 0x48)]
    + poll() + pic_regs(),
    "auto_eoi": [out(0x20, 0x11), out(0x21, 0x30), out(0x21, 4), out(0x21, 3), out(0x21, 1),
                 irq(3, 1), irq(1, 1)] + poll() + pic_regs() + [out(0x20, 0x80)] + poll()
    + pic_regs() + [irq(3, 0), irq(3, 1)] + poll() + pic_regs() + [out(0x20, 0x00)],
    "poll_empty_and_masked": LINUX_INIT + poll() + poll(0xA0) + [out(0x21, 0xFF), irq(7, 1)]
    + poll() + pic_regs() + [out(0x21, 0x7F)] + poll() + pic_regs(),
    "single_mode": [out(0x20, 0x13), out(0x21, 0x40), out(0x21, 0x01), out(0x21, 0x01),
                    irq(3, 1)] + pic_regs() + poll() + pic_regs() + [out(0x20, 0x63)]
    + pic_regs(),
    "reinit_clears": LINUX_INIT + [irq(3, 1), out(0x21, 0x55)] + poll()
    + [irq(4, 1), out(0x20, 0x0B)] + LINUX_INIT[:1] + pic_regs(),
    "special_fully_nested": [out(0x20, 0x11), out(0xA0, 0x11), out(0x21, 0x20), out(0xA1, 0x28),
                             out(0x21, 4), out(0xA1, 2), out(0x21, 0x11), out(0xA1, 1),
                             out(0x21, 1), irq(12, 1)] + poll() + poll(0xA0) + [irq(9, 1)]
    + pic_regs() + poll() + poll(0xA0) + pic_regs(),
}


def test_scenarios_run_on_our_bus():
    """The probes themselves run without QEMU (so their ops stay valid everywhere)."""
    from dev_platform import platform_bus
    for ops in SCENARIOS.values():
        bus, _, _ = platform_bus()
        run_on_bus(ops, bus)


@pytest.mark.oracle("qemu", "binutils")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_pic_matches_qemu(tmp_path, monkeypatch, name):
    qemu, ours = run_both(SCENARIOS[name], tmp_path, monkeypatch)
    assert ours == qemu


# -- INTA by the CPU (QEMU 7.2): the LAPIC's LINT0 as ExtINT, interrupts taken with STI --------

from dev_platform import (  # noqa: E402
    mmio_read,
    mmio_write,
    run_platform_on_chipset,
    run_platform_under_qemu,
    take,
)

APIC = 0xFEE00000
VIRTUAL_WIRE = [mmio_write(APIC + 0xF0, 0x1FF), mmio_write(APIC + 0x350, 0x8700)]
AEOI_INIT = [out(0x20, 0x11), out(0x21, 0x20), out(0x21, 4), out(0x21, 3), out(0x21, 1)]
INTA_SCENARIOS = {
    "inta_nested_and_cascade": VIRTUAL_WIRE + LINUX_INIT + [irq(3, 1), irq(5, 1), irq(12, 1)]
    + pic_regs() + [take()] + pic_regs() + [out(0x20, 0x20), take()] + pic_regs()
    + [out(0xA0, 0x20), out(0x20, 0x20), take()] + pic_regs(),
    "inta_blocked_by_masked_lint0": [mmio_write(APIC + 0xF0, 0x1FF)] + LINUX_INIT
    + [irq(3, 1), take()] + pic_regs() + VIRTUAL_WIRE + [take()] + pic_regs(),
    "inta_auto_eoi": VIRTUAL_WIRE + AEOI_INIT + [irq(3, 1), irq(4, 1), take()] + pic_regs()
    + [out(0x20, 0x80), irq(3, 0), irq(4, 0), irq(3, 1), irq(4, 1), take()] + pic_regs(),
    "inta_level": VIRTUAL_WIRE + LINUX_INIT + [out(0x4D0, 0x20), irq(5, 1), take()] + pic_regs()
    + [out(0x20, 0x20), take()] + pic_regs() + [irq(5, 0), out(0x20, 0x20), take()]
    + pic_regs(),
    "apic_vector_before_extint": VIRTUAL_WIRE + LINUX_INIT
    + [mmio_write(APIC + 0x300, 0x40045), irq(3, 1), take()] + pic_regs()
    + [mmio_read(APIC + 0x140), mmio_read(APIC + 0x120)],
}


@pytest.mark.skipif(not (QEMU and TOOLS), reason="needs qemu-system-x86_64 and GNU as/ld")
@pytest.mark.parametrize("name", sorted(INTA_SCENARIOS))
def test_inta_matches_qemu(tmp_path, name):
    ops = INTA_SCENARIOS[name]
    assert run_platform_on_chipset(ops).hex(" ") == run_platform_under_qemu(ops, tmp_path).hex(" ")
