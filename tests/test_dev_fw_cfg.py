"""fw_cfg legacy I/O interface (QEMU docs/specs/fw_cfg.rst). Item bytes for signature, ID,
CPU count and RAM size are compared with QEMU 7.2 in test_dev_qemu.py."""

from __future__ import annotations

import struct

import pytest

from x86vm.devices.fw_cfg import FW_CFG_FILE_DIR, FwCfg, FwCfgError
from x86vm.machine.bus import PortBus


@pytest.fixture
def bus():
    b = PortBus()
    b.register(0x510, 2, FwCfg(ram_size=256 << 20, num_cpus=2), "fw_cfg")
    return b


def read_item(bus, selector, n):
    bus.write(0x510, 2, selector)
    return bytes(bus.read(0x511, 1) for _ in range(n))


def test_well_known_items(bus):
    assert read_item(bus, 0x0000, 6) == b"QEMU\0\0"  # zeros past the end
    assert read_item(bus, 0x0001, 4) == struct.pack("<I", 1)
    assert read_item(bus, 0x0003, 8) == struct.pack("<Q", 256 << 20)
    assert read_item(bus, 0x0005, 2) == struct.pack("<H", 2)


def test_selector_rewinds_and_unknown_items_read_zero(bus):
    assert read_item(bus, 0x0000, 2) == b"QE"
    assert read_item(bus, 0x0000, 1) == b"Q"
    assert read_item(bus, 0x3FFF, 3) == b"\0\0\0"
    assert read_item(bus, 0x8000, 3) == b"\0\0\0"  # architecture-local space is separate
    assert read_item(bus, 0x4000, 4) == b"QEMU"  # the write-channel bit is ignored


def test_file_directory_is_big_endian_and_sorted():
    cfg = FwCfg(ram_size=1 << 20)
    sel_b = cfg.add_file("opt/x86vm/b", b"bee")
    sel_a = cfg.add_file("opt/x86vm/a", b"a" * 300)
    bus = PortBus()
    bus.register(0x510, 2, cfg)
    raw = read_item(bus, FW_CFG_FILE_DIR, 4 + 2 * 64)
    assert struct.unpack(">I", raw[:4]) == (2,)
    entries = [struct.unpack(">IHH56s", raw[4 + 64 * i : 68 + 64 * i]) for i in range(2)]
    assert [(size, sel, name.rstrip(b"\0")) for size, sel, _, name in entries] == [
        (300, sel_a, b"opt/x86vm/a"), (3, sel_b, b"opt/x86vm/b")]
    assert read_item(bus, sel_b, 4) == b"bee\0"


def test_add_file_rejects_bad_names():
    cfg = FwCfg(ram_size=1 << 20)
    cfg.add_file("opt/x", b"")
    for name in ("", "n" * 56, "opt/x"):
        with pytest.raises(FwCfgError):
            cfg.add_file(name, b"data")


def test_widths_and_writes_never_disturb(bus):
    bus.write(0x510, 2, 0x0000)
    assert bus.read(0x511, 2) == 0 and bus.read(0x511, 4) == 0  # invalid widths: no data
    assert bus.read(0x510, 1) == ord("Q")  # a byte read at either port reads data
    bus.write(0x511, 1, 0x55)  # data writes are dropped
    bus.write(0x511, 2, 0x0005)  # a word at 0x511 is not a select
    bus.write(0x510, 4, 0x0005)
    assert bus.read(0x511, 1) == ord("E")
