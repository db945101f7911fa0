"""82093AA I/O APIC: behaviour from the 82093AA datasheet (sections cited per test)."""

from __future__ import annotations

import pytest

from dev_platform import (
    LINUX_INIT,
    irq,
    mmio_read,
    mmio_write,
    run_platform_on_chipset,
    run_platform_under_qemu,
    take,
)
from dev_probe import out
from x86vm.devices.ioapic import IOAPIC_BASE, IoApic
from x86vm.devices.lapic import APIC_BASE_DEFAULT as APIC
from x86vm.machine.bus import MmioBus

EDGE, LEVEL, MASKED = 0, 1 << 15, 1 << 16


@pytest.fixture
def io():
    sent = []
    a = IoApic(lambda *msg: sent.append(msg))
    a.sent_messages = sent
    return a


def sel_read(a, index):
    a.write(0x00, 1, index)
    return a.read(0x10, 4)


def sel_write(a, index, value):
    a.write(0x00, 1, index)
    a.write(0x10, 4, value)


def route(a, pin, low, dest=0):
    sel_write(a, 0x11 + 2 * pin, dest << 24)
    sel_write(a, 0x10 + 2 * pin, low)


def test_id_version_arbitration(io):
    """§3.2.1-§3.2.3: ID bits 27-24 R/W; version 0x11 with 24 entries (max 0x17); the
    arbitration ID follows the ID."""
    assert sel_read(io, 1) == 0x00170011
    sel_write(io, 0, 0xFFFFFFFF)
    assert sel_read(io, 0) == 0x0F000000 and sel_read(io, 2) == 0x0F000000
    sel_write(io, 1, 0)
    assert sel_read(io, 1) == 0x00170011


def test_redirection_reset_and_read_only_bits(io):
    """§3.2.4: entries reset masked; delivery status and remote IRR are read only."""
    assert all(sel_read(io, 0x10 + i) == (MASKED if i % 2 == 0 else 0) for i in range(48))
    sel_write(io, 0x10, 0xFFFFFFFF)
    assert sel_read(io, 0x10) == 0xFFFFFFFF & ~(1 << 12 | 1 << 14) & 0x1FFFF
    sel_write(io, 0x11, 0xFFFFFFFF)
    assert sel_read(io, 0x11) == 0xFF000000
    assert sel_read(io, 0x40) == 0 and sel_read(io, 3) == 0  # unimplemented (QEMU: 0)


def test_ioregsel_and_window_widths(io):
    io.write(0x00, 1, 0x12)
    assert io.read(0x00, 1) == 0x12
    io.write(0x10, 2, 0x1234)  # IOWIN takes 32-bit writes only
    assert sel_read(io, 0x12) == MASKED


def test_edge_delivery_and_masked_edges_lost(io):
    """Edge-sensitive: one message per rising edge; edges on a masked pin are ignored."""
    route(io, 4, 0x34, dest=0)
    io.set_irq(4, True)
    io.set_irq(4, True)
    io.set_irq(4, False)
    assert io.sent_messages == [(0x34, 0, False, 0, False)]
    route(io, 4, 0x34 | MASKED)
    io.set_irq(4, True)
    io.set_irq(4, False)
    route(io, 4, 0x34)
    assert len(io.sent_messages) == 1


def test_level_remote_irr_and_eoi(io):
    """Level-sensitive: remote IRR set on delivery, cleared by the EOI of its vector; a still
    asserted pin is delivered again."""
    route(io, 10, 0x3A | LEVEL, dest=1)
    io.set_irq(10, True)
    assert sel_read(io, 0x10 + 20) & (1 << 14)
    io.set_irq(10, True)
    assert len(io.sent_messages) == 1
    io.eoi(0x3A)
    assert len(io.sent_messages) == 2 and sel_read(io, 0x24) & (1 << 14)
    io.set_irq(10, False)
    io.eoi(0x3A)
    assert len(io.sent_messages) == 2 and not sel_read(io, 0x24) & (1 << 14)
    io.eoi(0x99)  # another vector: nothing


def test_unmasking_asserted_level_pin_delivers(io):
    route(io, 9, 0x39 | LEVEL | MASKED)
    io.set_irq(9, True)
    assert io.sent_messages == []
    route(io, 9, 0x39 | LEVEL)
    assert [m[0] for m in io.sent_messages] == [0x39]


def test_delivery_mode_and_destination_passed_on(io):
    route(io, 1, 0x400 | 1 << 11 | 0x21, dest=0x0F)  # NMI, logical
    io.set_irq(1, True)
    assert io.sent_messages == [(0x21, 4, False, 0x0F, True)]


def test_version_0x20_eoi_register():
    sent = []
    io = IoApic(lambda *msg: sent.append(msg), version=0x20)
    assert sel_read(io, 1) == 0x00170020
    route(io, 3, 0x33 | LEVEL)
    io.set_irq(3, True)
    io.write(0x40, 4, 0x33)
    assert len(sent) == 2


def test_bad_pin_refused(io):
    with pytest.raises(ValueError):
        io.set_irq(24, True)


def test_registers_on_mmio_bus(io):
    bus = MmioBus()
    io.register(bus)
    bus.write(IOAPIC_BASE, 4, 1)
    assert bus.read(IOAPIC_BASE + 0x10, 4) == 0x00170011


# -- QEMU 7.2 (its IOAPIC is version 0x20; x86vm's chipset is built with that version for the
# comparison) — MMIO from unreal mode, pc-testdev drives the pins, the LAPIC takes the
# messages. QEMU keeps the reserved bits 17-55 of an entry as written: reads are masked to the
# datasheet's fields.

def sel(index):
    return mmio_write(IOAPIC_BASE, index, 1)


def ioread(index):
    mask = (0x1FFFF if index % 2 == 0 else 0xFF000000) if 0x10 <= index < 0x40 else None
    return [sel(index), mmio_read(IOAPIC_BASE + 0x10, mask=mask)]


def iowrite(index, value):
    return [sel(index), mmio_write(IOAPIC_BASE + 0x10, value)]


APIC_MODE = LINUX_INIT + [out(0x21, 0xFF), out(0xA1, 0xFF), mmio_write(APIC + 0xF0, 0x1FF)]
EOI = mmio_write(APIC + 0xB0, 0)


def lapic_vectors():
    """ISR, TMR, IRR words holding vectors 0x20-0x3f."""
    return [mmio_read(APIC + base + 0x10) for base in (0x100, 0x180, 0x200)]


QEMU_SCENARIOS = {
    "registers": [mmio_read(IOAPIC_BASE)] + [x for i in (0, 1, 2, 3, 0x10, 0x11, 0x3E, 0x3F,
                                                          0x40, 0x41, 0xFF)
                                             for x in ioread(i)]
    + iowrite(0, 0xFFFFFFFF) + ioread(0) + ioread(2) + iowrite(1, 0) + ioread(1)
    + iowrite(0x10, 0xFFFFFFFF) + iowrite(0x11, 0xFFFFFFFF) + ioread(0x10) + ioread(0x11)
    + [sel(0x12), mmio_read(IOAPIC_BASE)],
    "level_remote_irr_eoi": APIC_MODE + iowrite(0x11 + 20, 0) + iowrite(0x10 + 20, 0x803A)
    + ioread(0x24) + [irq(10, 1)] + ioread(0x24) + lapic_vectors() + [take()]
    + lapic_vectors() + ioread(0x24) + [EOI] + ioread(0x24) + lapic_vectors()
    + [take(), irq(10, 0), EOI] + ioread(0x24) + lapic_vectors() + [take()] + lapic_vectors(),
    "masked_edges_dropped": APIC_MODE + iowrite(0x10 + 10, 0x10035) + [irq(5, 1), irq(5, 0)]
    + iowrite(0x10 + 10, 0x35) + lapic_vectors() + [irq(5, 1)] + lapic_vectors() + [take()]
    + lapic_vectors() + [irq(5, 0), irq(5, 1)] + lapic_vectors() + [EOI] + lapic_vectors(),
    "eoi_register": APIC_MODE + iowrite(0x10 + 6, 0x8036) + [irq(3, 1)] + ioread(0x16)
    + [mmio_write(IOAPIC_BASE + 0x40, 0x36)] + ioread(0x16) + lapic_vectors()
    + [take(), EOI, irq(3, 0)] + ioread(0x16) + lapic_vectors(),
    "irq0_on_pin2": APIC_MODE + iowrite(0x10 + 4, 0x8032) + iowrite(0x10 + 4 * 2, 0x8034)
    + [irq(2, 1), irq(0, 1), irq(4, 1)] + ioread(0x14) + ioread(0x18) + lapic_vectors()
    + ioread(0x10),
}


@pytest.mark.oracle("qemu", "binutils")
@pytest.mark.parametrize("name", sorted(QEMU_SCENARIOS))
def test_ioapic_matches_qemu(tmp_path, name):
    ops = QEMU_SCENARIOS[name]
    assert run_platform_on_chipset(ops).hex(" ") == run_platform_under_qemu(ops, tmp_path).hex(" ")
