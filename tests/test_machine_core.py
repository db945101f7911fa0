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


# -- what the board's devices contribute reaches the boot loaders --------------------------------

RESERVED_LOW = (0x7F00000, 0xE0000)  # just below SeaBIOS's firmware window at 0x7fe0000
RESERVED_MMIO = (0xD0000000, 0x1000)  # in the PCI hole: no RAM there
BOARD_OPTIONS = {"cmdline_fragments": ("virtio_mmio.device=4K@0xd0000000:5",),
                 "reserved": (RESERVED_LOW, RESERVED_MMIO)}
# SEABIOS_E820_128M (tests/test_boot_loaders.py) with the two reservations
E820_WITH_RESERVATIONS = [
    (0x0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2),
    (0x100000, 0x7F00000 - 0x100000, 1), (0x7F00000, 0xE0000, 2), (0x7FE0000, 0x20000, 2),
    (0xD0000000, 0x1000, 2)]


@pytest.fixture
def ram128():
    m = GuestMemory()
    m.add_ram(0, 128 << 20)
    yield m
    m.close()


def test_linux_gets_the_boards_kernel_parameters_and_reservations(ram128):
    import struct

    from test_boot_loaders import make_bzimage
    from x86vm.machine.boot import load_image

    initrd = bytes(0x10000)
    entry = load_image(ram128, make_bzimage(), cmdline="console=ttyS0", initrd=initrd,
                       **BOARD_OPTIONS)
    zero_page = ram128.read(entry.gprs["rsi"], 4096)
    # boot.rst: cmd_line_ptr at 0x228, ramdisk_image/size at 0x218, e820 at 0x1e8/0x2d0
    assert ram128.read_cstring(struct.unpack_from("<I", zero_page, 0x228)[0]) == \
        b"console=ttyS0 virtio_mmio.device=4K@0xd0000000:5"
    e820 = [struct.unpack_from("<QQI", zero_page, 0x2D0 + 20 * i)
            for i in range(zero_page[0x1E8])]
    assert e820 == E820_WITH_RESERVATIONS
    image_at, size = struct.unpack_from("<II", zero_page, 0x218)
    assert image_at + size <= RESERVED_LOW[0]  # the initrd went below the reserved window


def test_multiboot_gets_the_reservations_but_not_linux_parameters(ram128):
    import struct

    from test_boot_loaders import aout_kludge_image
    from x86vm.machine.boot import load_image

    entry = load_image(ram128, aout_kludge_image(), cmdline="kernel arg", **BOARD_OPTIONS)
    info = entry.gprs["rbx"]
    assert ram128.read_cstring(ram128.read_u32(info + 16)) == b"kernel arg"
    length, addr = struct.unpack("<II", ram128.read(info + 44, 8))
    entries = [struct.unpack("<IQQI", ram128.read(addr + off, 24))[1:]
               for off in range(0, length, 24)]
    assert entries == E820_WITH_RESERVATIONS
    lower, upper = struct.unpack("<II", ram128.read(info + 4, 8))
    assert (lower, upper) == (639, (0x7F00000 - 0x100000) // 1024)


def test_overlapping_reservations_are_reported_once(ram128):
    from x86vm.machine.boot.layout import e820_map

    got = [(e.addr, e.size, e.type) for e in e820_map(ram128, [(0x7FD0000, 0x20000)])]
    assert got[3:] == [(0x100000, 0x7FD0000 - 0x100000, 1), (0x7FD0000, 0x30000, 2)]
