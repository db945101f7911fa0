"""Port-probe scenarios shared by the QEMU differential tests (test_dev_qemu.py) and the
same probes run on the KVM Machine (test_dev_machine.py). Each is a list of port operations
(see dev_probe.py); masks drop the bits where x86vm knowingly differs from QEMU:

* UART MCR reset value: QEMU 0x08 (OUT2 set), the PC16550D 0x00 (Table III) — x86vm follows
  the datasheet, since OUT2 gates IRQ 4 on a PC.
* UART MSR delta bits in loopback: QEMU computes MSR from MCR without deltas; the datasheet
  (§8.8 bit 4, §8.9) has the looped-back inputs set the delta bits — x86vm follows it.
* i8042 status bit 3 (A2): QEMU keeps it set; the AT Technical Reference has writes to 0x60
  clear it — x86vm follows the reference.
* fw_cfg ID bit 1 (DMA interface): QEMU has it, x86vm has no DMA interface.
"""

from __future__ import annotations

from dev_probe import Op, inp, out

COM1 = 0x3F8
THR, IER, IIR, LCR, MCR, LSR, MSR, SCR = (COM1 + i for i in range(8))
FCR = IIR
STATUS = 0x64
A2 = 0xF7  # mask out i8042 status bit 3


def cmos_dump(time_mask: int | None = None) -> list[Op]:
    """All 128 CMOS bytes; ``time_mask`` masks the clock and status registers 0x00-0x0c."""
    ops: list[Op] = []
    for i in range(128):
        ops += [out(0x70, i), inp(0x71, mask=time_mask if i <= 0x0C else None)]
    return ops


def cmos_modes() -> list[Op]:
    ops = [out(0x70, 0x0A), inp(0x70), inp(0x71), out(0x70, 0x8B), inp(0x71), inp(0x70, 2)]
    ops += [out(0x70, 0x0B), out(0x71, 0x06)]  # binary, 24 h
    ops += [x for r in (0, 2, 4, 7, 8, 9) for x in (out(0x70, r), inp(0x71))]
    ops += [out(0x70, 0x0B), out(0x71, 0x00)]  # BCD, 12 h: 15:04 is 03 PM
    ops += [x for r in (0, 2, 4) for x in (out(0x70, r), inp(0x71))]
    ops += [out(0x70, 0x0B), out(0x71, 0x92), inp(0x71)]  # SET clears UIE
    ops += [out(0x70, 0x04), out(0x71, 0x81), out(0x70, 0x02), out(0x71, 0x59)]
    ops += [out(0x70, 0x0B), out(0x71, 0x02), out(0x70, 0x04), inp(0x71), out(0x70, 0x02),
            inp(0x71)]
    ops += [out(0x70, 0x0C), inp(0x71), out(0x70, 0x0D), out(0x71, 0), inp(0x71)]
    ops += [out(0x70, 0x40), out(0x71, 0xA5), out(0x70, 0xC0), inp(0x71)]  # RAM, NMI bit
    return ops


def uart_reset_and_divisor_latch() -> list[Op]:
    ops = [inp(COM1 + i, mask=None if i != 4 else 0xF7) for i in range(8)]  # MCR: see top
    ops += [out(LCR, 0x83), inp(COM1), inp(IER), out(COM1, 0x01), out(IER, 0x02), inp(COM1),
            inp(IER), inp(LCR), out(LCR, 0x03), inp(COM1), inp(IER), inp(LCR)]
    ops += [out(SCR, 0x5A), inp(SCR), inp(COM1 + 6, 2), inp(COM1 + 4, 4, mask=0xFFFFFFF7)]
    return ops


def uart_fifo_and_thre() -> list[Op]:
    ops = [out(MCR, 0x0B)]
    ops += [out(FCR, 0x07), inp(IIR), out(FCR, 0xC7), inp(IIR), out(FCR, 0x00), inp(IIR)]
    ops += [out(IER, 0x02), inp(IIR), inp(IIR), out(THR, ord("A")), inp(LSR), inp(IIR),
            inp(IIR), out(IER, 0x02), inp(IIR), out(IER, 0x00), inp(IIR), inp(IER)]
    ops += [out(FCR, 0x01), out(IER, 0x0F)] + [out(THR, c) for c in b"hello\r\n"]
    ops += [inp(IIR), inp(LSR), out(IER, 0xFF), inp(IER), out(MCR, 0xFF), inp(MCR)]
    return ops


def uart_loopback() -> list[Op]:
    ops = [out(MCR, 0x10), inp(MSR, mask=0xF0), out(MCR, 0x1F), inp(MSR, mask=0xF0),
           out(MCR, 0x12), inp(MSR, mask=0xF0), out(MCR, 0x19), inp(MSR, mask=0xF0)]
    # FIFO on, trigger 1: TX looped to RX, nothing reaches the host
    ops += [out(FCR, 0x07), out(IER, 0x01), out(THR, 0x78), out(THR, 0x79), inp(LSR),
            inp(IIR), inp(THR), inp(LSR), inp(THR), inp(LSR), inp(IIR), inp(THR)]
    # FIFO overrun: 17 bytes into a 16-byte FIFO
    ops += [out(IER, 0x05)] + [out(THR, 0x30 + i) for i in range(17)]
    ops += [inp(IIR), inp(LSR), inp(LSR), inp(IIR)] + [inp(THR) for _ in range(16)]
    ops += [inp(LSR)]
    # 16450 mode overrun: the second byte replaces the first
    ops += [out(FCR, 0x00), out(THR, 0x41), out(THR, 0x42), inp(LSR), inp(LSR), inp(THR),
            inp(LSR), out(MCR, 0x03), inp(MSR, mask=0xF0)]
    return ops


def i8042_commands() -> list[Op]:
    ops = [inp(STATUS, mask=A2), inp(0x60), out(0x64, 0x20), inp(STATUS, mask=A2), inp(0x60),
           inp(STATUS, mask=A2), inp(0x60)]
    ops += [out(0x64, 0xAA), inp(STATUS, mask=A2), inp(0x60), out(0x64, 0xAB), inp(0x60),
            out(0x64, 0xA9), inp(0x60), out(0x64, 0xD0), inp(0x60), out(0x64, 0xC0), inp(0x60)]
    ops += [out(0x64, 0x60), out(0x60, 0x47), out(0x64, 0x20), inp(0x60)]
    ops += [out(0x64, 0xD3), out(0x60, 0x5A), inp(STATUS, mask=A2), inp(0x60),
            out(0x64, 0xD2), out(0x60, 0x33), inp(STATUS, mask=A2), inp(0x60)]
    for cmd in (0xAD, 0xAE, 0xA7, 0xA8):
        ops += [out(0x64, cmd), out(0x64, 0x20), inp(0x60)]
    return ops


def i8042_device_replies() -> list[Op]:
    ops = [out(0x60, 0xF2), inp(STATUS, mask=A2), inp(0x60), inp(0x60), inp(0x60),
           inp(STATUS, mask=A2), out(0x60, 0xFF), inp(0x60), inp(0x60), out(0x60, 0xEE),
           inp(0x60), out(0x60, 0x99), inp(0x60), out(0x60, 0xED), inp(0x60), out(0x60, 0x07),
           inp(0x60), out(0x60, 0xF0), inp(0x60), out(0x60, 0x00), inp(0x60), inp(0x60),
           out(0x60, 0xF4), inp(0x60)]
    for cmd in (0xF2, 0xFF, 0xE9, 0xF6, 0xF4, 0xF5, 0xE6, 0xEA):
        ops += [out(0x64, 0xD4), out(0x60, cmd)] + [inp(STATUS, mask=A2), inp(0x60)] * 4
    ops += [out(0x64, 0xD4), out(0x60, 0xF3), inp(0x60), out(0x64, 0xD4), out(0x60, 200),
            inp(0x60), inp(STATUS, mask=A2)]
    return ops


def i8042_overflow() -> list[Op]:
    """A guest that writes and never reads: the controller has one output byte, each PS/2
    device a bounded queue; reading afterwards shows what was kept."""
    ops = [out(0x60, 0xF2) for _ in range(12)]  # 36 reply bytes for the keyboard
    ops += [x for _ in range(40) for x in (inp(STATUS, mask=A2), inp(0x60))]
    ops += [out(0x64, 0x20), out(0x64, 0xAA), out(0x64, 0xC0)]  # three controller replies
    ops += [x for _ in range(3) for x in (inp(STATUS, mask=A2), inp(0x60))]
    ops += [out(0x64, 0xD4), out(0x60, 0xF2)] * 20  # 40 mouse reply bytes
    ops += [x for _ in range(42) for x in (inp(STATUS, mask=A2), inp(0x60))]
    return ops


def item(selector: int, n: int, mask: int | None = None) -> list[Op]:
    return [out(0x510, selector, 2)] + [inp(0x511, mask=mask) for _ in range(n)]


def fw_cfg_items() -> list[Op]:
    ops = item(0x0000, 6) + item(0x0001, 1, mask=0xFD) + item(0x0001, 4)[2:] + item(0x0005, 3)
    ops += item(0x0003, 9) + item(0x000F, 3) + item(0x1234, 2) + item(0x4000, 5)
    ops += [out(0x510, 0, 2), inp(0x511, 2), inp(0x511, 4), inp(0x510), inp(0x510, 2),
            out(0x510, 1), inp(0x511), out(0x511, 0x55), inp(0x511), out(0x510, 0, 4),
            inp(0x511), out(0x511, 0x0005, 2), inp(0x511)]
    return ops


def post_and_debug_exit() -> list[Op]:
    return [inp(0x80), out(0x80, 0x12), inp(0x80), out(0x80, 0x3456, 2), inp(0x80), inp(0xF4)]


SCENARIOS = {f.__name__: f for f in (
    cmos_modes, uart_reset_and_divisor_latch, uart_fifo_and_thre, uart_loopback,
    i8042_commands, i8042_device_replies, i8042_overflow, fw_cfg_items, post_and_debug_exit)}
