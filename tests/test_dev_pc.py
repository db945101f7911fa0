"""attach_pc_devices on a fake Machine, debug-exit, POST port and the host consoles."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from support.dev_probe import FakeMachine
from x86vm.devices.console import BufferConsole, ConsoleError, open_console
from x86vm.devices.debug_exit import DebugExit
from x86vm.devices.pc import attach_pc_devices
from x86vm.devices.uart import Uart16550
from x86vm.machine.bus import BusError
from x86vm.machine.irq import NullIrqLine


def test_attach_registers_the_pc_ports():
    m = FakeMachine(num_cpus=1)
    devs = attach_pc_devices(m, BufferConsole())
    assert set(devs) == {"uart", "debug_exit", "post", "cmos", "i8042", "fw_cfg"}
    claimed = {(mp.base, mp.size) for mp in m.pio.mappings}
    assert claimed == {(0x3F8, 8), (0xF4, 1), (0x80, 1), (0x70, 2), (0x60, 1), (0x64, 1),
                       (0x510, 2)}
    assert set(m.lines) == {1, 4, 12}
    with pytest.raises(BusError):
        attach_pc_devices(m)  # the ports are taken


def test_attach_without_debug_exit_and_other_port():
    m = FakeMachine()
    assert "debug_exit" not in attach_pc_devices(m, debug_exit_port=None)
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
    post = attach_pc_devices(m)["post"]
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
    c = open_console(f"file:{tmp_path / 'out.txt'}")
    u = Uart16550(NullIrqLine(), c)
    for b in b"log":
        u.write(0, 1, b)
    u.close()
    assert (tmp_path / "out.txt").read_bytes() == b"log"
    with pytest.raises(ConsoleError, match="No such file"):
        open_console(f"file:{tmp_path / 'no' / 'x'}")


def test_tcp_client_console_round_trip():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    c = open_console(f"tcp:127.0.0.1:{port}")
    peer, _ = server.accept()
    u = Uart16550(NullIrqLine(), c)
    for b in b"hey":
        u.write(0, 1, b)
    assert peer.recv(16) == b"hey"
    peer.sendall(b"in")
    deadline = time.monotonic() + 5
    while not u.read(5, 1) & 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bytes([u.read(0, 1), u.read(0, 1)]) == b"in"
    u.close()
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
    import io
    import os
    import pty
    import termios

    from x86vm.devices.console import StreamConsole

    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        c = StreamConsole(io.BytesIO(), slave)
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
