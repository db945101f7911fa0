"""82093AA I/O APIC: behaviour from the 82093AA datasheet (sections cited per test)."""

from __future__ import annotations

import pytest

from x86vm.devices.ioapic import IOAPIC_BASE, IoApic
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
    assert sel_read(io, 0x40) == 0xFFFFFFFF  # past the table


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


def test_bad_pin_refused(io):
    with pytest.raises(ValueError):
        io.set_irq(24, True)


def test_registers_on_mmio_bus(io):
    bus = MmioBus()
    io.register(bus)
    bus.write(IOAPIC_BASE, 4, 1)
    assert bus.read(IOAPIC_BASE + 0x10, 4) == 0x00170011
