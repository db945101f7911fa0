"""National Semiconductor PC16550D UART (COM1 at 0x3f8, IRQ 4 on a PC).

Register map (PC16550D datasheet, June 1995, Table II "Summary of Registers"), offset from
the base port; DLAB is LCR bit 7:

====== ================== ================== =======================
offset read               write              DLAB = 1
====== ================== ================== =======================
0      RBR receive buffer THR transmit hold  DLL divisor latch low
1      IER                IER                DLM divisor latch high
2      IIR                FCR                —
3      LCR                LCR
4      MCR                MCR
5      LSR                (factory test)
6      MSR                (ignored)
7      SCR scratch        SCR
====== ================== ================== =======================

Transmission is instantaneous (no baud-rate timing): a byte written to THR reaches the host
console (or, in loopback, the receiver) before the ``OUT`` returns, so LSR.THRE/TEMT read back
set, as under QEMU. The character-timeout indication (§8.6, IIR = 0xCC) has no timer either:
it is pending whenever the receive FIFO holds fewer bytes than the trigger level and no more
host input is waiting — the moment a real UART's 4-character timer would be the only thing
left to deliver those bytes.

Host input arrives through :meth:`Uart16550.feed` from any thread; it is queued (bounded) and
moved into the receiver as the guest empties it, so a host burst never overruns the FIFO. The
UART starts no thread: whoever connects it (the board, ``console.start(uart.feed)``) owns the
console and its reader thread.

Interrupt output: the UART's INTR pin reaches the PIC only while MCR.OUT2 is set (the PC's
IRQ buffer enable) and never in loopback mode, where the datasheet (§8.8, bit 4) forces the
modem-control outputs — OUT2 included — inactive. QEMU raises its IRQ regardless of OUT2.
"""

from __future__ import annotations

import threading
from collections import deque
from enum import IntEnum, IntFlag

from x86vm.devices.console import Console
from x86vm.devices.ports import ByteRegisters
from x86vm.machine.irq import IrqLine

COM1_BASE = 0x3F8
COM1_IRQ = 4
FIFO_DEPTH = 16
BACKLOG_LIMIT = 64 * 1024
POWER_ON_DIVISOR = 12  # 9600 baud from 1.8432 MHz; the datasheet leaves it undefined (QEMU: 12)


class Reg(IntEnum):
    """Register offsets (Table II)."""

    RBR_THR_DLL = 0
    IER_DLM = 1
    IIR_FCR = 2
    LCR = 3
    MCR = 4
    LSR = 5
    MSR = 6
    SCR = 7


class IER(IntFlag):
    """Interrupt Enable Register (§8.7); bits 4-7 always read 0."""

    ERBFI = 0x01  # received data available (and character timeout)
    ETBEI = 0x02  # transmitter holding register empty
    ELSI = 0x04  # receiver line status
    EDSSI = 0x08  # modem status


class IID(IntEnum):
    """IIR interrupt identification, bits 3-0 (Table IV), highest priority first."""

    RECEIVER_LINE_STATUS = 0x06
    RECEIVED_DATA = 0x04
    CHARACTER_TIMEOUT = 0x0C
    THR_EMPTY = 0x02
    MODEM_STATUS = 0x00
    NONE = 0x01


IIR_FIFOS_ENABLED = 0xC0  # IIR bits 7-6 mirror FCR bit 0 (§8.6)


class FCR(IntFlag):
    """FIFO Control Register (§8.5), write only."""

    ENABLE = 0x01
    RX_RESET = 0x02
    TX_RESET = 0x04
    DMA_MODE = 0x08
    TRIGGER = 0xC0


RX_TRIGGER_LEVELS = (1, 4, 8, 14)  # FCR bits 7-6 (§8.5)


class LCR(IntFlag):
    """Line Control Register (§8.1): word length, stop bits, parity, break, DLAB."""

    WORD_LENGTH = 0x03
    STOP_BITS = 0x04
    PARITY_ENABLE = 0x08
    EVEN_PARITY = 0x10
    STICK_PARITY = 0x20
    SET_BREAK = 0x40
    DLAB = 0x80


class MCR(IntFlag):
    """Modem Control Register (§8.8); bits 5-7 are permanently 0."""

    DTR = 0x01
    RTS = 0x02
    OUT1 = 0x04
    OUT2 = 0x08
    LOOP = 0x10


MCR_MASK = 0x1F


class LSR(IntFlag):
    """Line Status Register (§8.4)."""

    DR = 0x01  # data ready
    OE = 0x02  # overrun error
    PE = 0x04  # parity error
    FE = 0x08  # framing error
    BI = 0x10  # break interrupt
    THRE = 0x20  # transmitter holding register (or TX FIFO) empty
    TEMT = 0x40  # transmitter empty (THR and shift register)
    RX_FIFO_ERROR = 0x80


LSR_ERRORS = LSR.OE | LSR.PE | LSR.FE | LSR.BI  # cleared by reading LSR


class MSR(IntFlag):
    """Modem Status Register (§8.9): deltas in bits 0-3, line states in 4-7."""

    DCTS = 0x01
    DDSR = 0x02
    TERI = 0x04  # RI went from asserted to deasserted
    DDCD = 0x08
    CTS = 0x10
    DSR = 0x20
    RI = 0x40
    DCD = 0x80


MSR_DELTAS = 0x0F
# The host end behaves as a connected null modem: CTS, DSR and DCD asserted, no ring.
HOST_MODEM_LINES = MSR.CTS | MSR.DSR | MSR.DCD


# §8.8 bit 4: in loopback the modem-control outputs drive the modem-status inputs.
LOOPBACK_WIRING = ((MCR.RTS, MSR.CTS), (MCR.DTR, MSR.DSR), (MCR.OUT1, MSR.RI),
                   (MCR.OUT2, MSR.DCD))


def loopback_modem_lines(mcr: int) -> int:
    """The MSR line states (bits 7-4) that MCR ``mcr`` produces in loopback."""
    return sum(int(line) for output, line in LOOPBACK_WIRING if mcr & output)


class Uart16550(ByteRegisters):
    """A PC16550D with 16-byte FIFOs; ``console`` is the host end of its serial line."""

    span = 8

    def __init__(self, irq: IrqLine, console: Console | None = None) -> None:
        self.irq = irq
        self.console = console if console is not None else Console()
        self._lock = threading.RLock()
        self._space = threading.Condition(self._lock)
        self._backlog = bytearray()
        self._closed = False
        self.transmitted = 0
        self.divisor = POWER_ON_DIVISOR  # DLL/DLM and SCR keep their values across reset()
        self.scr = 0
        self.reset()

    # -- lifecycle --------------------------------------------------------------------

    def reset(self) -> None:
        """Master reset (Table III): registers to their reset values; SCR and DLL/DLM kept."""
        with self._lock:
            self.ier = 0
            self.lcr = 0
            self.mcr = 0
            self.lsr_errors = 0
            self.fcr = 0
            self.rx: deque[int] = deque()
            self.rbr = 0
            self.thr_pending = False  # THRE interrupt armed (cleared by IIR read / THR write)
            self.modem_lines = HOST_MODEM_LINES
            self.msr_deltas = 0
            self._irq_level = False
            self.irq.set_level(False)

    def close(self) -> None:
        """Stop accepting host input (a feeder blocked on a full backlog returns). The
        console belongs to the board: the UART only writes to it."""
        with self._lock:
            self._closed = True
            self._space.notify_all()

    # -- host side ----------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Queue host bytes for the receiver (thread-safe; blocks while the backlog is full)."""
        with self._lock:
            for i in range(0, len(data), 4096):
                while len(self._backlog) >= BACKLOG_LIMIT and not self._closed:
                    self._space.wait()
                if self._closed:
                    return
                self._backlog += data[i : i + 4096]
                self._refill()
                self._update_irq()

    def _rx_capacity(self) -> int:
        return FIFO_DEPTH if self.fcr & FCR.ENABLE else 1

    def _refill(self) -> None:
        if self.mcr & MCR.LOOP:  # §8.8: the receiver input is disconnected in loopback
            return
        room = self._rx_capacity() - len(self.rx)
        if room > 0 and self._backlog:
            self.rx.extend(self._backlog[:room])
            del self._backlog[:room]
            self._space.notify_all()

    def _receive(self, byte: int) -> None:
        """One character arrives from the shift register (loopback path)."""
        if len(self.rx) < self._rx_capacity():
            self.rx.append(byte)
        elif self.fcr & FCR.ENABLE:
            self.lsr_errors |= LSR.OE  # §8.4: FIFO full, the shift register is overwritten
        else:
            self.rx[0] = byte  # §8.4: the unread RBR character is destroyed
            self.lsr_errors |= LSR.OE

    def _transmit(self, byte: int) -> None:
        self.transmitted += 1
        if self.mcr & MCR.LOOP:
            self._receive(byte)  # §8.8: TX shift register looped to RX shift register
        else:
            self.console.write(bytes((byte,)))
        self.thr_pending = True  # THR (and TX FIFO) empty again: THRE interrupt source

    # -- interrupts (§8.6, Table IV) ---------------------------------------------------

    def _rx_trigger(self) -> int:
        return RX_TRIGGER_LEVELS[(self.fcr & FCR.TRIGGER) >> 6] if self.fcr & FCR.ENABLE else 1

    def _interrupt_id(self) -> IID:
        if self.ier & IER.ELSI and self.lsr_errors:
            return IID.RECEIVER_LINE_STATUS
        if self.ier & IER.ERBFI and self.rx:
            if len(self.rx) >= self._rx_trigger():
                return IID.RECEIVED_DATA
            if not self._backlog or self.mcr & MCR.LOOP:
                return IID.CHARACTER_TIMEOUT
        if self.ier & IER.ETBEI and self.thr_pending:
            return IID.THR_EMPTY
        if self.ier & IER.EDSSI and self.msr_deltas:
            return IID.MODEM_STATUS
        return IID.NONE

    def _update_irq(self) -> None:
        gated = self.mcr & (MCR.OUT2 | MCR.LOOP) == MCR.OUT2
        level = bool(gated and self._interrupt_id() != IID.NONE)
        if level != self._irq_level:
            self._irq_level = level
            self.irq.set_level(level)

    def _set_modem_lines(self, lines: int) -> None:
        """New modem input states: record deltas (§8.9) — TERI only on RI going inactive."""
        changed = self.modem_lines ^ lines
        deltas = (changed >> 4) & (MSR.DCTS | MSR.DDSR | MSR.DDCD)
        if changed & MSR.RI and not lines & MSR.RI:
            deltas |= MSR.TERI
        self.msr_deltas |= deltas
        self.modem_lines = lines

    # -- guest side ---------------------------------------------------------------------

    def read_byte(self, offset: int) -> int:
        with self._lock:
            value = self._read(offset)
            self._update_irq()
            return value

    def write_byte(self, offset: int, value: int) -> None:
        with self._lock:
            self._write(offset, value)
            self._update_irq()

    def _read(self, offset: int) -> int:
        dlab = self.lcr & LCR.DLAB
        if offset == Reg.RBR_THR_DLL:
            if dlab:
                return self.divisor & 0xFF
            if self.rx:
                self.rbr = self.rx.popleft()
                self._refill()
            elif self.fcr & FCR.ENABLE:
                return 0  # empty FIFO (QEMU returns 0; the datasheet leaves it undefined)
            return self.rbr
        if offset == Reg.IER_DLM:
            return self.divisor >> 8 if dlab else self.ier
        if offset == Reg.IIR_FCR:
            iid = self._interrupt_id()
            if iid == IID.THR_EMPTY:
                self.thr_pending = False  # §8.6: reading IIR clears a THRE interrupt
            return iid | (IIR_FIFOS_ENABLED if self.fcr & FCR.ENABLE else 0)
        if offset == Reg.LCR:
            return self.lcr
        if offset == Reg.MCR:
            return self.mcr
        if offset == Reg.LSR:
            value = self.lsr_errors | LSR.THRE | LSR.TEMT | (LSR.DR if self.rx else 0)
            self.lsr_errors = 0
            return value
        if offset == Reg.MSR:
            value = self.modem_lines | self.msr_deltas
            self.msr_deltas = 0
            return value
        return self.scr

    def _write(self, offset: int, value: int) -> None:
        dlab = self.lcr & LCR.DLAB
        if offset == Reg.RBR_THR_DLL:
            if dlab:
                self.divisor = (self.divisor & 0xFF00) | value
            else:
                self.thr_pending = False  # §8.6: writing THR clears a THRE interrupt
                self._transmit(value)
        elif offset == Reg.IER_DLM:
            if dlab:
                self.divisor = (self.divisor & 0x00FF) | value << 8
            else:
                if value & ~self.ier & IER.ETBEI:
                    self.thr_pending = True  # enabling ETBEI with THR empty raises THRE
                self.ier = value & 0x0F
        elif offset == Reg.IIR_FCR:
            self._write_fcr(value)
        elif offset == Reg.LCR:
            self.lcr = value
        elif offset == Reg.MCR:
            self.mcr = value & MCR_MASK
            if self.mcr & MCR.LOOP:
                self._set_modem_lines(loopback_modem_lines(self.mcr))
            else:
                self._set_modem_lines(HOST_MODEM_LINES)
                self._refill()
        elif offset == Reg.SCR:
            self.scr = value
        # LSR (factory test) and MSR writes are ignored.

    def _write_fcr(self, value: int) -> None:
        """§8.5: bit 0 enables the FIFOs; other bits are programmed only with bit 0 set;
        changing bit 0 clears both FIFOs."""
        if (value ^ self.fcr) & FCR.ENABLE:
            self.rx.clear()
        if not value & FCR.ENABLE:
            self.fcr = 0
            self._refill()
            return
        if value & FCR.RX_RESET:
            self.rx.clear()
        self.fcr = value & (FCR.ENABLE | FCR.DMA_MODE | FCR.TRIGGER)
        self._refill()

    # -- introspection ------------------------------------------------------------------

    @property
    def irq_level(self) -> bool:
        return self._irq_level

    @property
    def backlog(self) -> int:
        """Host bytes waiting for room in the receiver."""
        with self._lock:
            return len(self._backlog)
