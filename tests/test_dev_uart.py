"""PC16550D UART register behaviour, checked against the datasheet (June 1995) sections cited
per test. Behaviour shared with QEMU is also compared byte for byte in test_dev_qemu.py."""

from __future__ import annotations

import threading

import pytest

from x86vm.devices import uart as uart_mod
from x86vm.devices.console import BufferConsole
from x86vm.devices.uart import Uart16550
from x86vm.machine.irq import NullIrqLine

RBR = THR = DLL = 0
IER = DLM = 1
IIR = FCR = 2
LCR, MCR, LSR, MSR, SCR = 3, 4, 5, 6, 7


@pytest.fixture
def line():
    return NullIrqLine()


@pytest.fixture
def console():
    return BufferConsole()


@pytest.fixture
def u(line, console):
    return Uart16550(line, console)


def rd(u, reg):
    return u.read(reg, 1)


def wr(u, reg, value):
    u.write(reg, 1, value)


def test_reset_values_table_iii(u):
    assert [rd(u, r) for r in (IER, IIR, LCR, MCR, LSR)] == [0x00, 0x01, 0x00, 0x00, 0x60]
    assert rd(u, MSR) & 0x0F == 0  # deltas clear; bits 7-4 follow the (connected) host lines


def test_reserved_bits_read_zero(u):
    wr(u, IER, 0xFF)
    wr(u, MCR, 0xFF)
    assert (rd(u, IER), rd(u, MCR)) == (0x0F, 0x1F)  # §8.7, §8.8: bits 7-4 / 7-5 are 0


def test_divisor_latch_behind_dlab_survives_reset(u):
    wr(u, LCR, 0x83)
    wr(u, DLL, 0x01)
    wr(u, DLM, 0x02)
    assert (rd(u, DLL), rd(u, DLM), rd(u, LCR)) == (0x01, 0x02, 0x83)
    wr(u, SCR, 0x77)
    u.reset()
    wr(u, LCR, 0x80)
    assert (rd(u, DLL), rd(u, DLM), rd(u, SCR)) == (0x01, 0x02, 0x77)


def test_transmit_reaches_console_not_in_loopback(u, console):
    for b in b"ok\n":
        wr(u, THR, b)
    assert bytes(console.output) == b"ok\n"
    assert rd(u, LSR) & 0x60 == 0x60  # THRE and TEMT: transmission is instantaneous
    wr(u, MCR, 0x10)
    wr(u, THR, ord("x"))
    assert bytes(console.output) == b"ok\n"  # §8.8: serial output held marking in loopback
    assert rd(u, RBR) == ord("x")


def test_interrupt_priority_table_iv(u):
    """RLS > RDA > THRE > modem status, each cleared by its own action (Table IV)."""
    wr(u, IER, 0x0F)
    wr(u, MCR, 0x10)  # loopback: modem lines change → modem-status deltas
    wr(u, THR, 0x41)
    wr(u, THR, 0x42)  # 16450 mode: overrun
    assert rd(u, IIR) == 0x06
    assert rd(u, LSR) == 0x63  # reading LSR clears OE
    assert rd(u, IIR) == 0x04
    assert rd(u, RBR) == 0x42  # the unread character was destroyed
    assert rd(u, IIR) == 0x02  # THRE; reading IIR clears it
    assert rd(u, IIR) == 0x00  # modem status
    assert rd(u, MSR) & 0x0F
    assert rd(u, IIR) == 0x01


def test_thre_interrupt_sources(u):
    wr(u, IER, 0x02)
    assert rd(u, IIR) == 0x02
    assert rd(u, IIR) == 0x01
    wr(u, IER, 0x02)  # no 0 → 1 edge of ETBEI: not re-armed
    assert rd(u, IIR) == 0x01
    wr(u, IER, 0x00)
    wr(u, IER, 0x02)
    assert rd(u, IIR) == 0x02
    wr(u, THR, 0x20)  # writing THR clears it; the byte leaves at once and it is set again
    assert rd(u, IIR) == 0x02


def test_out2_gates_the_irq_line_and_loopback_forces_it_off(u, line):
    wr(u, IER, 0x02)
    assert not line.level  # interrupt pending, but OUT2 = 0 on a PC keeps IRQ 4 quiet
    wr(u, MCR, 0x08)
    assert line.level
    assert rd(u, IIR) == 0x02 and not line.level
    wr(u, IER, 0x00)
    wr(u, IER, 0x02)
    assert line.level
    wr(u, MCR, 0x18)  # loopback forces OUT2 inactive (§8.8 bit 4)
    assert not line.level
    wr(u, MCR, 0x08)
    assert line.level


def test_fifo_enable_bits_and_trigger_level(u):
    wr(u, FCR, 0xC0)  # FCR0 = 0: the other bits are not programmed (§8.5)
    assert rd(u, IIR) == 0x01
    wr(u, FCR, 0x01)
    assert rd(u, IIR) == 0xC1
    u.feed(b"a")
    wr(u, IER, 0x01)
    assert rd(u, IIR) == 0xC4  # trigger level 1 (not 14 from the ignored write)
    wr(u, FCR, 0x00)  # disabling clears the FIFOs
    assert rd(u, LSR) & 0x01 == 0


def test_host_input_trigger_level_timeout_and_order(u):
    wr(u, FCR, 0xC1)  # FIFO, trigger 14
    wr(u, IER, 0x01)
    u.feed(b"12345")
    assert rd(u, IIR) == 0xCC  # below trigger, nothing more coming: character timeout
    u.feed(bytes(range(0x40, 0x40 + 20)))
    assert rd(u, IIR) == 0xC4  # 16 in the FIFO ≥ 14
    assert u.backlog == 9
    got = bytearray()
    while rd(u, LSR) & 0x01:
        got.append(rd(u, RBR))
    assert bytes(got) == b"12345" + bytes(range(0x40, 0x40 + 20))
    assert rd(u, IIR) == 0xC1
    assert rd(u, RBR) == 0  # empty FIFO reads 0 (QEMU)


def test_fifo_rx_reset_and_loopback_overrun_keeps_fifo(u):
    wr(u, FCR, 0x01)
    wr(u, MCR, 0x10)
    for i in range(17):
        wr(u, THR, i)
    assert rd(u, LSR) == 0x63
    assert [rd(u, RBR) for _ in range(16)] == list(range(16))  # byte 16 was lost
    wr(u, THR, 0x55)
    wr(u, FCR, 0x03)  # RX FIFO reset
    assert rd(u, LSR) == 0x60


def test_loopback_disconnects_host_input(u):
    wr(u, MCR, 0x10)
    u.feed(b"z")
    assert rd(u, LSR) & 0x01 == 0
    wr(u, MCR, 0x00)
    assert rd(u, LSR) & 0x01 and rd(u, RBR) == ord("z")


def test_msr_loopback_mirroring_and_deltas(u):
    """§8.8 bit 4: RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD; §8.9 delta and TERI bits."""
    wr(u, MCR, 0x10)
    rd(u, MSR)
    wr(u, MCR, 0x1F)
    assert rd(u, MSR) == 0xF0 | 0x0B  # DCTS, DDSR, DDCD; RI rising: no TERI
    assert rd(u, MSR) == 0xF0  # deltas cleared by the read
    wr(u, MCR, 0x1B)  # OUT1 off: RI falls
    assert rd(u, MSR) == 0xB4
    wr(u, MCR, 0x12)
    assert rd(u, MSR) == 0x10 | 0x0A


def test_wide_accesses_split_into_bytes(u):
    wr(u, SCR, 0x5A)
    assert u.read(6, 2) == 0x5A00 | rd(u, MSR)
    assert u.read(7, 2) == 0xFF5A  # the byte past the UART floats
    u.write(3, 2, 0x0B83)  # LCR = 0x83, MCR = 0x0b
    assert (rd(u, LCR), rd(u, MCR)) == (0x83, 0x0B)


def test_linux_autoconfig_sequence(u):
    """The probe of Linux's 8250 driver identifies a 16550A."""
    wr(u, IER, 0x00)
    assert rd(u, IER) & 0x0F == 0
    wr(u, IER, 0x0F)
    assert rd(u, IER) & 0x0F == 0x0F
    wr(u, IER, 0x00)
    wr(u, MCR, 0x1A)
    assert rd(u, MSR) & 0xF0 == 0x90
    wr(u, MCR, 0x00)
    wr(u, FCR, 0x01)
    assert rd(u, IIR) >> 6 == 3  # FIFOs enabled and working: 16550A


def test_feed_blocks_when_backlog_full_and_keeps_order(u, monkeypatch):
    monkeypatch.setattr(uart_mod, "BACKLOG_LIMIT", 8)
    data = bytes(range(256)) * 4
    t = threading.Thread(target=u.feed, args=(data,))
    t.start()
    got = bytearray()
    while len(got) < len(data):
        if rd(u, LSR) & 0x01:
            got.append(rd(u, RBR))
    t.join(5)
    assert not t.is_alive() and bytes(got) == data


def test_close_releases_a_blocked_feeder(u, monkeypatch):
    monkeypatch.setattr(uart_mod, "BACKLOG_LIMIT", 4)
    t = threading.Thread(target=u.feed, args=(b"x" * 100,))
    t.start()
    u.close()
    t.join(5)
    assert not t.is_alive()


def test_the_uart_starts_no_console_thread_its_board_connects_the_feed(line):
    console = BufferConsole()
    u = Uart16550(line, console)
    with pytest.raises(RuntimeError, match="not attached"):
        console.send(b"hi")  # the UART did not start the console itself
    console.start(u.feed)  # what the board does
    console.send(b"hi")
    assert rd(u, RBR) == ord("h")


def test_linux_startup_thre_and_txen_checks_find_no_bugs(u):
    """serial8250_do_startup: the UART_BUG_TXEN and UART_BUG_THRE probes (IIR must show a
    pending THRE interrupt each time ETBEI is turned on while THR is empty)."""
    wr(u, IER, 0x02)
    lsr, iir = rd(u, LSR), rd(u, IIR)
    wr(u, IER, 0x00)
    assert lsr & 0x40 and not iir & 0x01  # no UART_BUG_TXEN
    wr(u, IER, 0x02)
    iir1 = rd(u, IIR)
    wr(u, IER, 0x00)
    wr(u, IER, 0x02)
    iir = rd(u, IIR)
    wr(u, IER, 0x00)
    assert not iir1 & 0x01 and not iir & 0x01  # no UART_BUG_THRE


@pytest.mark.parametrize("fcr, level", [(0x01, 1), (0x41, 4), (0x81, 8), (0xC1, 14)])
def test_each_receiver_trigger_level(u, fcr, level):
    """§8.5 FCR bits 7-6 (RCVR trigger): 00 = 1, 01 = 4, 10 = 8, 11 = 14 bytes. Below the
    level the data waits (with nothing more coming: character timeout, IIR 0xCC); at the
    level, received-data-available (IIR 0xC4)."""
    wr(u, FCR, fcr)
    wr(u, IER, 0x01)
    if level > 1:
        u.feed(bytes(level - 1))
        assert rd(u, IIR) == 0xCC
    u.feed(b"x")
    assert rd(u, IIR) == 0xC4
    rd(u, RBR)                                   # one byte fewer than the level again
    assert rd(u, IIR) == (0xCC if level > 1 else 0xC1)  # (level 1: the FIFO is empty)
