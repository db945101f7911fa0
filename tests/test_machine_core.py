"""Guest memory and bus contracts (no backend needed)."""

import pytest

from x86vm.machine.bus import BusError, PortBus
from x86vm.machine.memory import GuestMemory, GuestMemoryError


class Recorder:
    def __init__(self):
        self.log = []

    def read(self, offset, size):
        self.log.append(("r", offset, size))
        return 0x1234 & ((1 << (8 * size)) - 1)

    def write(self, offset, size, value):
        self.log.append(("w", offset, size, value))


def test_ram_roundtrip_and_bounds():
    mem = GuestMemory()
    mem.add_ram(0, 0x10000)
    mem.write_u32(0xFFFC, 0xDEADBEEF)
    assert mem.read(0xFFFC, 4) == bytes.fromhex("efbeadde")
    with pytest.raises(GuestMemoryError):
        mem.read(0xFFFD, 4)  # straddles the end of RAM
    with pytest.raises(GuestMemoryError):
        mem.write(-1, b"x")
    with pytest.raises(GuestMemoryError):
        mem.read(0x10000, 1)


def test_ram_and_mmio_must_not_overlap():
    mem = GuestMemory()
    mem.add_ram(0, 0x10000)
    with pytest.raises(GuestMemoryError):
        mem.add_ram(0x8000, 0x10000)
    with pytest.raises(GuestMemoryError):
        mem.add_mmio(0xF000, 0x2000, Recorder())
    mem.add_mmio(0x10000, 0x1000, Recorder())
    with pytest.raises(GuestMemoryError):
        mem.add_ram(0x10000, 0x1000)


def test_bounded_cstring():
    mem = GuestMemory()
    mem.add_ram(0, 0x1000)
    mem.write(0x10, b"console=ttyS0\0")
    assert mem.read_cstring(0x10) == b"console=ttyS0"
    mem.fill(0, 0x1000, 0x41)
    with pytest.raises(GuestMemoryError):
        mem.read_cstring(0, limit=64)


def test_port_bus_dispatch_offsets_and_unclaimed():
    bus = PortBus()
    dev = Recorder()
    bus.register(0x3F8, 8, dev, "uart")
    bus.write(0x3FB, 1, 0x80)
    assert bus.read(0x3F8, 2) == 0x1234
    assert dev.log == [("w", 3, 1, 0x80), ("r", 0, 2)]
    assert bus.read(0x1234, 1) == 0xFF
    assert bus.read(0x1234, 4) == 0xFFFFFFFF
    assert bus.unclaimed[(0x1234, False)] == 2
    with pytest.raises(BusError):
        bus.register(0x3FF, 2, Recorder())
    with pytest.raises(BusError):
        bus.register(0xFFFF, 2, Recorder())


def test_unclaimed_counter_is_bounded():
    from x86vm.machine.bus import MAX_UNCLAIMED_ADDRESSES, OTHER_ADDRESSES, MmioBus

    bus = MmioBus()
    for addr in range(MAX_UNCLAIMED_ADDRESSES + 100):
        bus.read(addr * 8, 8)
    assert len(bus.unclaimed) == MAX_UNCLAIMED_ADDRESSES + 1
    assert bus.unclaimed[(OTHER_ADDRESSES, False)] == 100
