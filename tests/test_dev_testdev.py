"""QEMU's pc-testdev and isa-debugcon: unit checks, and the same port accesses compared with
QEMU 7.2 (``-device pc-testdev``; ``isa-debugcon``)."""

from __future__ import annotations

import pytest

import dev_probe
from dev_platform import LINUX_INIT, pic_regs, run_both
from dev_probe import inp, out, run_on_bus
from x86vm.devices.debugcon import DebugCon
from x86vm.devices.pc_testdev import IOMEM_BASE, PcTestDev
from x86vm.machine.bus import MmioBus, PortBus
from x86vm.machine.irq import NullIrqLine

needs_qemu = pytest.mark.oracle("qemu", "binutils")


@pytest.fixture
def rig():
    lines = [NullIrqLine() for _ in range(24)]
    dev = PcTestDev(lines)
    pio, mmio = PortBus(), MmioBus()
    dev.register(pio, mmio)
    return dev, lines, pio, mmio


def test_scratch_register_two_windows(rig):
    dev, lines, pio, mmio = rig
    pio.write(0xE0, 4, 0x12345678)
    assert pio.read(0xE2, 1) == 0x34 and pio.read(0xE8, 4) == 0x12345678
    pio.write(0xE9, 2, 0xBEEF)
    assert pio.read(0xE0, 4) == 0x12BEEF78
    assert pio.read(0xE3, 2) == 0  # runs past the window


def test_irq_ports_drive_lines(rig):
    dev, lines, pio, mmio = rig
    pio.write(0x2000 + 14, 1, 1)
    assert lines[14].level
    pio.write(0x2000 + 14, 1, 0)
    assert not lines[14].level and lines[14].edges == 1
    pio.write(0x2000 + 20, 1, 7)
    assert lines[20].level
    pio.write(0x2000 + 3, 2, 0x0101)  # byte writes only
    assert not lines[3].level and pio.read(0x2000, 1) == 0


def test_flush_port_and_iomem(rig):
    dev, lines, pio, mmio = rig
    pio.write(0xE4, 4, 0x12345678)
    pio.write(0xE4, 1, 0x99)
    assert dev.flush.flushed == [0x12345000] and pio.read(0xE4, 4) == 0
    mmio.write(IOMEM_BASE + 0x10, 8, 0x1122334455667788)
    assert mmio.read(IOMEM_BASE + 0x14, 4) == 0x11223344
    mmio.write(IOMEM_BASE + 0xFFFE, 4, 0xAABBCCDD)  # clipped at the end of the region
    assert mmio.read(IOMEM_BASE + 0xFFFE, 2) == 0xCCDD


def test_debugcon():
    dev = DebugCon()
    pio = PortBus()
    pio.register(0xE9, 1, dev)
    pio.write(0xE9, 1, ord("h"))
    pio.write(0xE9, 1, ord("i"))
    assert bytes(dev.output) == b"hi" and pio.read(0xE9, 1) == 0xE9
    seen = []
    DebugCon(seen.append, readback=0x42).write(0, 1, 0x41)
    assert seen == [b"A"]


TESTDEV_PROBE = [out(0xE0, 0x12345678, 4), inp(0xE0), inp(0xE1), inp(0xE2, 2), inp(0xE3),
                 inp(0xE8, 4), out(0xE9, 0xAB), out(0xEA, 0xCDEF, 2), inp(0xE0, 4), inp(0xE8, 2),
                 inp(0xE4), inp(0xE4, 2), inp(0xE4, 4), inp(0x2000), inp(0x2017),
                 out(0xE4, 0x1000, 4), out(0xE4, 1), inp(0xE0, 4), inp(0xE3, 2), inp(0xEB, 2),
                 out(0xE3, 0x5566, 2), inp(0xE0, 4), inp(0xE4, 4)]
IRQ_PORT_WIDTHS = LINUX_INIT + [out(0x2003, 0x0101, 2)] + pic_regs() \
    + [out(0x2005, 0x01010101, 4)] + pic_regs() + [out(0x2009, 0x02), out(0x200C, 0xFF)] \
    + pic_regs()


@needs_qemu
@pytest.mark.parametrize("ops", [TESTDEV_PROBE, IRQ_PORT_WIDTHS], ids=["ports", "irq_widths"])
def test_testdev_matches_qemu(tmp_path, monkeypatch, ops):
    qemu, ours = run_both(ops, tmp_path, monkeypatch)
    assert ours == qemu


@needs_qemu
def test_testdev_shadows_debugcon_in_qemu(tmp_path, monkeypatch):
    """With both devices at 0xE9, QEMU 7.2 answers neither way: the port reads 0 (not the
    debug console's 0xE9, not the scratch byte written), in either order. So the chipset
    registers the debug console only without pc-testdev."""
    monkeypatch.setattr(dev_probe, "DEBUGCON", 0x402)
    for order in (("pc-testdev", "isa-debugcon,iobase=0xe9"),
                  ("isa-debugcon,iobase=0xe9", "pc-testdev")):
        extra = tuple(x for dev in order for x in ("-device", dev))
        reads, _ = dev_probe.run_under_qemu([out(0xE8, 0x5A00, 2), inp(0xE9)], tmp_path,
                                            extra=extra)
        assert reads == b"\x00"


@needs_qemu
def test_debugcon_readback_matches_qemu(tmp_path):
    reads, _ = dev_probe.run_under_qemu([inp(0xE9), inp(0xE9)], tmp_path)
    pio = PortBus()
    pio.register(0xE9, 1, DebugCon())
    assert run_on_bus([inp(0xE9), inp(0xE9)], pio) == reads == b"\xe9\xe9"
