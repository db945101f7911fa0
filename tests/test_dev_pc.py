"""The PC board on a fake Machine (attach_pc_devices → PcBoard), debug-exit, POST port and
the host consoles."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from support.dev_probe import FakeMachine
from x86vm.devices import pc
from x86vm.devices.console import BufferConsole, ConsoleError, open_console
from x86vm.devices.debug_exit import DebugExit
from x86vm.devices.pc import PcBoard, attach_pc_devices
from x86vm.devices.uart import Uart16550
from x86vm.machine.bus import BusError, MmioBus
from x86vm.machine.irq import NullIrqLine


def test_attach_registers_the_pc_ports():
    m = FakeMachine(num_cpus=1)
    board = attach_pc_devices(m, BufferConsole())
    assert isinstance(board, PcBoard)
    assert isinstance(board.uart, Uart16550) and isinstance(board.debug_exit, DebugExit)
    assert board.chipset is None  # all of them in the "kernel"
    claimed = {(mp.base, mp.size) for mp in m.pio.mappings}
    assert claimed == {(0x3F8, 8), (0xF4, 1), (0x80, 1), (0x70, 2), (0x60, 1), (0x64, 1),
                       (0x510, 2), (0x600, 12)}
    assert set(m.lines) == {1, 4, 8, 12}
    with pytest.raises(BusError):
        attach_pc_devices(m)  # the ports are taken


def test_attach_without_debug_exit_and_other_port():
    m = FakeMachine()
    assert attach_pc_devices(m, debug_exit_port=None).debug_exit is None
    m = FakeMachine()
    attach_pc_devices(m, debug_exit_port=0x501, debug_exit_iosize=2)
    m.pio.write(0x502, 1, 3)
    assert m.stops == [(7, "debug-exit: guest wrote 0x3")]


def test_reset_and_stop_reach_the_machine():
    m = FakeMachine()
    attach_pc_devices(m)
    m.pio.write(0x64, 1, 0xFE)
    m.pio.write(0xF4, 1, 0x10)
    assert len(m.resets) == 1 and m.stops[0][0] == 0x21


def test_the_board_connects_the_console_to_the_uart_and_closes_it():
    class Recording(BufferConsole):
        closed = False

        def close(self):
            self.closed = True

    console = Recording()
    board = attach_pc_devices(FakeMachine(), console)
    console.send(b"k")  # host input reaches the UART through the board's wiring
    assert board.uart.read(5, 1) & 1 and board.uart.read(0, 1) == ord("k")
    board.close()
    assert console.closed


def test_devices_contribute_kernel_parameters_and_reserved_memory():
    board = attach_pc_devices(FakeMachine())
    tables = board.firmware
    assert tables is not None and tables.pm_base == 0x600
    assert board.boot_options() == {"cmdline_fragments": (), "reserved": ((0xF0000, 0x1000),),
                                    "firmware": tables}
    mmio = object()
    board.add(mmio, cmdline="virtio_mmio.device=4K@0xd0000000:5", reserve=(0xD0000000, 4096))
    board.add_cmdline("quiet")
    assert board.extra == [mmio]
    assert board.boot_options() == {
        "cmdline_fragments": ("virtio_mmio.device=4K@0xd0000000:5", "quiet"),
        "reserved": ((0xF0000, 0x1000), (0xD0000000, 4096)), "firmware": tables}
    for bad in ("", " x", "a\0b"):
        with pytest.raises(ValueError):
            board.add_cmdline(bad)
    with pytest.raises(ValueError):
        board.reserve(0x1000, 0)


class NoIrqchipMachine(FakeMachine):
    """A fake machine without an in-kernel irqchip: the board must bring the chipset."""

    in_kernel = frozenset()

    def __init__(self, takes_interrupts: bool = True) -> None:
        super().__init__()
        self.mmio = MmioBus()
        self.takes_interrupts = takes_interrupts
        self.controller = self.local_apic = None
        self.timers: list = []
        self.pending_calls = 0

    def at(self, deadline_ns, callback):
        self.timers.append((deadline_ns, callback))
        return self

    def cancel(self):
        pass

    def set_interrupt_controller(self, controller, local_apic=None):
        self.controller, self.local_apic = controller, local_apic
        return self.takes_interrupts

    def interrupt_pending(self):
        self.pending_calls += 1


def test_the_board_builds_the_chipset_without_an_in_kernel_irqchip():
    """Devices get their lines from the Python chipset, the vCPU its LAPIC; the machine's
    own lines are never asked for. The backend's name is never asked (the fake has none)."""
    m = NoIrqchipMachine()
    board = attach_pc_devices(m, BufferConsole())
    chipset = board.chipset
    assert chipset is not None and m.lines == {}
    assert type(m.controller) is type(chipset.cpu_interrupts) and m.local_apic is chipset.lapic
    assert board.i8042.kbd_irq is chipset.irq_line(1)
    assert board.uart.irq.line is chipset.irq_line(4)  # through the thread-safe deferral
    names = {mp.name for mp in m.pio.mappings}
    assert {"debugcon", "uart-com1", "cmos"} <= names
    assert chipset.lapic.read(0x30, 4) == 0x00050014  # the LAPIC page answers on the MMIO bus
    assert m.mmio.read(0xFEE00030, 4) == 0x00050014
    # an off-thread level change is replayed through the timer service
    board.uart.irq.set_level(True)
    deadline, replay = m.timers[-1]
    assert deadline == 0 and not chipset.irq_line(4).level
    replay()
    assert chipset.irq_line(4).level and chipset.pic.snapshot()["irr"] & 1 << 4


def test_a_partial_in_kernel_platform_or_a_deaf_backend_is_refused():
    m = NoIrqchipMachine()
    m.in_kernel = frozenset({"pic", "ioapic"})
    with pytest.raises(pc.PlatformError):
        attach_pc_devices(m)
    with pytest.raises(pc.PlatformError):
        attach_pc_devices(NoIrqchipMachine(takes_interrupts=False))


def test_pc_testdev_replaces_the_debug_console():
    m = NoIrqchipMachine()
    board = attach_pc_devices(m, testdev=True)
    assert board.chipset.testdev is not None and board.chipset.debugcon is None


@pytest.mark.parametrize("iosize,size,value,status", [
    (1, 1, 0x00, 0x01), (1, 1, 0xFF, 0x1FF), (1, 4, 0x12345678, (0x78 << 1) | 1),
    (4, 4, 0x12345678, (0x12345678 << 1) | 1), (4, 2, 0xBEEF, (0xBEEF << 1) | 1)])
def test_debug_exit_status(iosize, size, value, status):
    stops = []
    dev = DebugExit(lambda s, r: stops.append(s), iosize)
    dev.write(0, size, value)
    assert stops == [status] and dev.read(0, 1) == 0


def test_post_codes_recorded_reads_float():
    m = FakeMachine()
    post = attach_pc_devices(m).post
    for code in (0x01, 0x02, 0x55):
        m.pio.write(0x80, 1, code)
    assert list(post.codes) == [1, 2, 0x55] and post.last == 0x55
    assert m.pio.read(0x80, 1) == 0xFF


@pytest.mark.parametrize("spec", ["", "tcp:", "tcp:host", "tcp:h:99999", "tcp:h:1,client",
                                  "serial", "file:"])
def test_bad_console_specs(spec):
    with pytest.raises(ConsoleError):
        open_console(spec)


def test_file_console_and_missing_directory(tmp_path):
    (tmp_path / "out.txt").write_bytes(b"kept until the run starts")
    c = open_console(f"file:{tmp_path / 'out.txt'}")
    assert (tmp_path / "out.txt").read_bytes() == b"kept until the run starts"
    c.open_output()
    u = Uart16550(NullIrqLine(), c)
    for b in b"log":
        u.write(0, 1, b)
    c.close()
    assert (tmp_path / "out.txt").read_bytes() == b"log"
    with pytest.raises(ConsoleError, match="No such file"):
        open_console(f"file:{tmp_path / 'no' / 'x'}")


def test_tcp_client_console_round_trip():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    c = open_console(f"tcp:127.0.0.1:{port}")
    peer, _ = server.accept()
    u = Uart16550(NullIrqLine(), c)
    c.start(u.feed)
    for b in b"hey":
        u.write(0, 1, b)
    assert peer.recv(16) == b"hey"
    peer.sendall(b"in")
    deadline = time.monotonic() + 5
    while not u.read(5, 1) & 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bytes([u.read(0, 1), u.read(0, 1)]) == b"in"
    u.close()
    c.close()
    peer.close()
    server.close()


def test_tcp_server_console_accepts_a_client():
    c = open_console("tcp:127.0.0.1:0,server")
    received, got = [], threading.Event()
    c.start(lambda data: (received.append(data), got.set()))
    c.write(b"dropped: nobody connected yet")
    with socket.create_connection(c.address) as s:
        s.sendall(b"x")
        assert got.wait(5) and received == [b"x"]
        c.write(b"out")
        assert s.recv(16) == b"out"
    c.close()


def test_tcp_connect_refused_is_one_clear_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConsoleError, match=f"tcp:127.0.0.1:{port}"):
        open_console(f"tcp:127.0.0.1:{port}")


def test_stdio_console_on_a_terminal_passes_keys_and_restores(tmp_path):
    import os
    import pty
    import termios

    from x86vm.devices.console import StreamConsole

    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        c = StreamConsole(None, slave)
        got = threading.Event()
        received = []
        c.start(lambda data: (received.append(data), got.set()))
        lflags = termios.tcgetattr(slave)[3]
        assert not lflags & (termios.ICANON | termios.ECHO) and lflags & termios.ISIG
        os.write(master, b"k")  # one key, no Enter needed
        assert got.wait(5) and received == [b"k"]
        c.close()
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
