"""Devices at bases that are not a multiple of their size (or of anything): every path from
an exit to a device hands it ``address - base``, never bits of the address. The PC has such
devices (the i8042 at 0x60/0x64, fw_cfg at 0x510, a PCI BAR anywhere); aligned bases hide
an offset computed by masking. A scripted backend plays the exits (no KVM, no QEMU)."""

from __future__ import annotations

from test_runloop import Recorder, loop
from x86vm.devices.uart import Uart16550
from x86vm.machine.bus import PortBus
from x86vm.machine.exits import Halt, IoExit, MmioExit
from x86vm.machine.irq import NullIrqLine
from x86vm.machine.memory import GuestMemory

PORT_BASE = 0x2F5            # odd, and not a multiple of the device's size
MMIO_BASE = 0xFEB00013


def test_port_exits_reach_a_device_at_an_odd_base_with_offsets():
    pio = PortBus()
    dev = Recorder(value=0xA5)
    pio.register(PORT_BASE, 6, dev, "odd")
    _, backend = loop([IoExit(PORT_BASE, 1, True, bytearray(b"\x01")),
                       IoExit(PORT_BASE + 3, 1, True, bytearray(b"\x02")),
                       IoExit(PORT_BASE + 5, 1, False, bytearray(1)),
                       IoExit(PORT_BASE + 2, 2, True, bytearray(b"\x04\x03")),
                       IoExit(PORT_BASE + 1, 1, True, bytearray(b"\5\6"), count=2),
                       IoExit(PORT_BASE + 4, 1, False, bytearray(2), count=2),
                       Halt()], pio=pio)
    assert dev.log == [("w", 0, 1, 1), ("w", 3, 1, 2), ("r", 5, 1), ("w", 2, 2, 0x304),
                       ("w", 1, 1, 5), ("w", 1, 1, 6), ("r", 4, 1), ("r", 4, 1)]
    assert backend.completed[0] == ("IoExit", b"\xa5", None)


def test_buffered_writes_reach_a_device_at_an_odd_base():
    pio = PortBus()
    dev = Recorder()
    pio.register(PORT_BASE, 6, dev, "odd")
    loop([Halt()], pio=pio, buffered=[IoExit(PORT_BASE + 3, 1, True, bytearray(b"\x07"))])
    assert dev.log == [("w", 3, 1, 7)]


def test_mmio_exits_reach_a_device_at_an_odd_base():
    mem = GuestMemory()
    dev = Recorder(value=0x55)
    mem.add_mmio(MMIO_BASE, 0x30, dev, "odd-mmio")
    loop([MmioExit(MMIO_BASE + 0x21, 4, True, bytearray(b"\x01\x02\x03\x04")),
          MmioExit(MMIO_BASE, 1, False, bytearray(1)), Halt()], mmio=mem.mmio)
    assert dev.log == [("w", 0x21, 4, 0x04030201), ("r", 0, 1)]


def test_a_uart_at_an_odd_base_sees_its_own_registers():
    """The 16550's scratch register (offset 7) and LCR (offset 3) through the bus."""
    pio = PortBus()
    uart = Uart16550(NullIrqLine())
    pio.register(PORT_BASE, uart.span, uart, "uart")
    pio.write(PORT_BASE + 7, 1, 0x5A)
    pio.write(PORT_BASE + 3, 1, 0x03)
    assert [pio.read(PORT_BASE + i, 1) for i in (7, 3)] == [0x5A, 0x03]
    uart.close()
