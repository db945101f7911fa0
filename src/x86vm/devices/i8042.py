"""Intel 8042 keyboard controller (ports 0x60 data, 0x64 status/command), with a PS/2
keyboard and mouse that answer probes but never type.

Enough for an OS to probe and to reset the machine (IBM PC AT Technical Reference,
"Keyboard Controller"; Linux ``drivers/input/serio/i8042.c`` for what is exercised):

* status (read 0x64): OBF (output buffer full), IBF (always 0: commands complete at once),
  SYS (set by the self test or command byte bit 2), A2 (last write went to 0x64), INH
  (bit 4: 1 = keyboard not inhibited), AUX_OBF (bit 5: the byte waiting came from the mouse).
* controller commands (write 0x64): 0x20 read / 0x60 write the command byte; 0xA7/0xA8
  disable/enable the mouse port; 0xA9 mouse interface test (0x00 = ok); 0xAA self test
  (0x55); 0xAB keyboard interface test (0x00); 0xAD/0xAE disable/enable the keyboard;
  0xC0 read input port; 0xD0/0xD1 read/write output port; 0xD2/0xD3 write the keyboard/mouse
  output buffer (loopback used by Linux's AUX probe); 0xD4 send the next byte to the mouse;
  0xF0-0xFF pulse output-port bits 3-0 low for each 0 bit in the command — bit 0 is the CPU
  reset line, so 0xFE resets the machine (Linux ``reboot=k``), as does writing an output
  port value with bit 0 clear.
* data (write 0x60) with no pending command goes to the keyboard.

Output is bounded as on the hardware, so a guest that writes and never reads cannot grow the
monitor: the controller's own replies share one output byte (a new reply replaces an unread
one, as the 8042's single output buffer and QEMU's ``cbdata`` do); a byte written to the
keyboard discards the unread replies to its previous command (QEMU ``hw/input/ps2.c``
``ps2_cqueue_reset``); the mouse holds at most :data:`PS2_QUEUE_SIZE` bytes and drops a reply
that does not fit whole. Checked against QEMU 7.2 (``i8042_overflow`` in
tests/dev_scenarios.py).

IRQ 1 is raised while a keyboard byte waits and command-byte bit 0 is set; IRQ 12 likewise for
a mouse byte and bit 1. Reading 0x60 with nothing waiting returns the last byte again.
Reset values (status 0x18, command byte 0x03, output port 0xcf, input port 0x80) and the
device replies were checked against QEMU 7.2 (``tests/test_dev_qemu.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from x86vm.devices.ports import ByteRegisters
from x86vm.machine.bus import PortBus
from x86vm.machine.irq import IrqLine

DATA_PORT = 0x60
COMMAND_PORT = 0x64
KEYBOARD_IRQ = 1
MOUSE_IRQ = 12

# Status register bits
STAT_OBF, STAT_IBF, STAT_SYS, STAT_A2, STAT_UNLOCKED, STAT_AUX_OBF = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20)
# Command byte bits
CMD_KBD_INT, CMD_AUX_INT, CMD_SYS, CMD_KBD_DISABLE, CMD_AUX_DISABLE, CMD_XLATE = (
    0x01, 0x02, 0x04, 0x10, 0x20, 0x40)
# Output port bits
OUT_RESET, OUT_A20 = 0x01, 0x02

RESET_STATUS = STAT_A2 | STAT_UNLOCKED
RESET_COMMAND_BYTE = CMD_KBD_INT | CMD_AUX_INT
RESET_OUTPUT_PORT = 0xCF  # reset line and A20 high, bits 7-6 and 3-2 high (QEMU)
INPUT_PORT = 0x80  # bit 7: keyboard not inhibited

ACK, RESEND, BAT_OK = 0xFA, 0xFE, 0xAA

# PS/2 device commands: command -> (reply, takes a parameter byte answered with ACK)
KEYBOARD_COMMANDS: dict[int, tuple[tuple[int, ...], bool]] = {
    0xED: ((ACK,), True),  # set LEDs
    0xEE: ((0xEE,), False),  # echo
    0xF0: ((ACK,), True),  # get/set scan code set
    0xF2: ((ACK, 0xAB, 0x83), False),  # identify: MF2 keyboard
    0xF3: ((ACK,), True),  # set typematic rate
    0xF4: ((ACK,), False),  # enable scanning
    0xF5: ((ACK,), False),  # disable scanning, defaults
    0xF6: ((ACK,), False),  # set defaults
    0xFF: ((ACK, BAT_OK), False),  # reset and self test
}
MOUSE_COMMANDS: dict[int, tuple[tuple[int, ...], bool]] = {
    0xE6: ((ACK,), False),  # scaling 1:1
    0xE7: ((ACK,), False),  # scaling 2:1
    0xE8: ((ACK,), True),  # set resolution
    0xE9: ((ACK, 0x00, 0x02, 0x64), False),  # status: stream mode, 4 counts/mm, 100/s
    0xEA: ((ACK,), False),  # stream mode
    0xF0: ((ACK,), False),  # remote mode
    0xF2: ((ACK, 0x00), False),  # identify: standard PS/2 mouse
    0xF3: ((ACK,), True),  # set sample rate
    0xF4: ((ACK,), False),  # enable reporting
    0xF5: ((ACK,), False),  # disable reporting
    0xF6: ((ACK,), False),  # set defaults
    0xFF: ((ACK, BAT_OK, 0x00), False),  # reset: BAT ok, device id 0
}
SCAN_CODE_SET = 2
PS2_QUEUE_SIZE = 16  # bytes a PS/2 device buffers (QEMU ps2.c: "required by PS/2 protocol")
SRC_CTRL, SRC_KBD, SRC_AUX = 0, 1, 2  # who produced a byte waiting in the output queue

ResetRequest = Callable[[str], None]


class I8042(ByteRegisters):
    """The controller. Offsets are from 0x60: 0 is the data port, 4 the status/command port.
    Ports 0x61-0x63 belong to other PC devices: register with :func:`register_i8042`."""

    span = 5

    def __init__(self, request_reset: ResetRequest, kbd_irq: IrqLine, aux_irq: IrqLine):
        self.request_reset = request_reset
        self.kbd_irq, self.aux_irq = kbd_irq, aux_irq
        self.reset()

    def reset(self) -> None:
        self.status = RESET_STATUS
        self.command_byte = RESET_COMMAND_BYTE
        self.output_port = RESET_OUTPUT_PORT
        self.queue: deque[tuple[int, bool, int]] = deque()  # (byte, from the mouse, source)
        self._waiting = [0, 0, 0]  # bytes queued per source (SRC_*)
        self.dropped = 0  # bytes a full queue refused (a guest writing without reading)
        self.last_data = 0
        self.pending_command: int | None = None  # controller command awaiting its data byte
        self.kbd_param_for: int | None = None  # keyboard command awaiting its parameter
        self.aux_param_for: int | None = None
        self.reset_requests = 0
        self._levels = [False, False]
        self.kbd_irq.set_level(False)
        self.aux_irq.set_level(False)

    # -- output buffer and interrupts ------------------------------------------------------

    def _queue(self, data: tuple[int, ...] | list[int], aux: bool = False,
               source: int = SRC_CTRL) -> None:
        """Load bytes for the guest to read; bounded per source (see the module docstring)."""
        queue, waiting = self.queue, self._waiting
        if source == SRC_KBD and waiting[SRC_KBD]:  # a new command: old replies are gone
            self.dropped += waiting[SRC_KBD]
            self.queue = queue = deque(e for e in queue if e[2] != SRC_KBD)
            waiting[SRC_KBD] = 0
        if source == SRC_AUX and waiting[SRC_AUX] + len(data) > PS2_QUEUE_SIZE:
            self.dropped += len(data)
            return
        for b in data:
            if source == SRC_CTRL and waiting[SRC_CTRL]:
                for i, entry in enumerate(queue):  # one output byte: the new reply replaces it
                    if entry[2] == SRC_CTRL:
                        queue[i] = (b, aux, SRC_CTRL)
                        break
                self.dropped += 1
                continue
            queue.append((b, aux, source))
            waiting[source] += 1
        self._update_irq()

    def _update_irq(self) -> None:
        head_aux = self.queue[0][1] if self.queue else None
        kbd = head_aux is False and bool(self.command_byte & CMD_KBD_INT)
        aux = head_aux is True and bool(self.command_byte & CMD_AUX_INT)
        for i, (line, level) in enumerate(((self.kbd_irq, kbd), (self.aux_irq, aux))):
            if level != self._levels[i]:
                self._levels[i] = level
                line.set_level(level)

    def read_status(self) -> int:
        value = self.status & ~(STAT_OBF | STAT_AUX_OBF | STAT_IBF)
        if self.queue:
            value |= STAT_OBF | (STAT_AUX_OBF if self.queue[0][1] else 0)
        return value

    def read_data(self) -> int:
        """Reading empties the output buffer: the IRQ line drops, and rises again if another
        byte is loaded, so an edge-triggered PIC sees one edge per byte (Linux's handler
        reads one byte per interrupt)."""
        if self.queue:
            self.last_data, _aux, source = self.queue.popleft()
            self._waiting[source] -= 1
            for i, line in enumerate((self.kbd_irq, self.aux_irq)):
                if self._levels[i]:
                    self._levels[i] = False
                    line.set_level(False)
            self._update_irq()
        return self.last_data

    # -- ports ------------------------------------------------------------------------------

    def read_byte(self, offset: int) -> int:
        if offset == 0:
            return self.read_data()
        if offset == 4:
            return self.read_status()
        return 0xFF

    def write_byte(self, offset: int, value: int) -> None:
        if offset == 0:
            self.status &= ~STAT_A2
            self.write_data(value)
        elif offset == 4:
            self.status |= STAT_A2
            self.write_command(value)

    def write_command(self, cmd: int) -> None:
        """A controller command (write to 0x64)."""
        self.pending_command = None
        if cmd == 0x20:
            self._queue((self.command_byte,))
        elif cmd in (0x60, 0xD1, 0xD2, 0xD3, 0xD4):
            self.pending_command = cmd
        elif cmd == 0xA7:
            self._set_command_byte(self.command_byte | CMD_AUX_DISABLE)
        elif cmd == 0xA8:
            self._set_command_byte(self.command_byte & ~CMD_AUX_DISABLE)
        elif cmd in (0xA9, 0xAB):
            self._queue((0x00,))  # interface test passed
        elif cmd == 0xAA:
            self.status |= STAT_SYS
            self._queue((0x55,))
        elif cmd == 0xAD:
            self._set_command_byte(self.command_byte | CMD_KBD_DISABLE)
        elif cmd == 0xAE:
            self._set_command_byte(self.command_byte & ~CMD_KBD_DISABLE)
        elif cmd == 0xC0:
            self._queue((INPUT_PORT,))
        elif cmd == 0xD0:
            self._queue((self.output_port,))
        elif cmd & 0xF0 == 0xF0 and not cmd & OUT_RESET:
            self._pulse_reset(f"i8042: pulse output port command {cmd:#04x}")
        # other commands are ignored

    def write_data(self, value: int) -> None:
        """A data byte (write to 0x60): the parameter of a controller command, or a byte for
        the keyboard."""
        cmd, self.pending_command = self.pending_command, None
        if cmd == 0x60:
            self._set_command_byte(value)
        elif cmd == 0xD1:
            self.output_port = value
            if not value & OUT_RESET:
                self._pulse_reset(f"i8042: output port written {value:#04x} (reset line low)")
        elif cmd == 0xD2:
            self._queue((value,))
        elif cmd == 0xD3:
            self._queue((value,), aux=True)
        elif cmd == 0xD4:
            self._mouse_write(value)
        else:
            self._keyboard_write(value)

    def _set_command_byte(self, value: int) -> None:
        self.command_byte = value
        if value & CMD_SYS:
            self.status |= STAT_SYS
        self._update_irq()

    def _pulse_reset(self, reason: str) -> None:
        self.reset_requests += 1
        self.request_reset(reason)

    # -- the PS/2 devices -------------------------------------------------------------------

    def _keyboard_write(self, value: int) -> None:
        param_for, self.kbd_param_for = self.kbd_param_for, None
        if param_for is not None:
            reply = [ACK]
            if param_for == 0xF0 and value == 0:  # query the current scan code set
                reply.append(SCAN_CODE_SET)
            self._queue(reply, source=SRC_KBD)
            return
        reply, takes_param = KEYBOARD_COMMANDS.get(value, ((RESEND,), False))
        if takes_param:
            self.kbd_param_for = value
        self._queue(reply, source=SRC_KBD)

    def _mouse_write(self, value: int) -> None:
        if self.aux_param_for is not None:
            self.aux_param_for = None
            self._queue((ACK,), aux=True, source=SRC_AUX)
            return
        reply, takes_param = MOUSE_COMMANDS.get(value, ((RESEND,), False))
        if takes_param:
            self.aux_param_for = value
        self._queue(reply, aux=True, source=SRC_AUX)


def register_i8042(pio: PortBus, controller: I8042) -> None:
    """Claim ports 0x60 and 0x64 (only) for ``controller`` on a port bus."""
    pio.register(DATA_PORT, 1, _Window(controller, 0), "i8042-data")
    pio.register(COMMAND_PORT, 1, _Window(controller, 4), "i8042-command")


class _Window:
    """One port of a device that decodes non-contiguous ports; wide accesses split per
    :class:`~x86vm.devices.ports.ByteRegisters`, bytes past the port float (0xff)."""

    def __init__(self, device: ByteRegisters, offset: int) -> None:
        self.device, self.offset = device, offset

    def read(self, offset: int, size: int) -> int:
        value = 0
        for i in range(max(0, min(size, 8))):
            byte = self.device.read_byte(self.offset) if offset + i == 0 else 0xFF
            value |= (byte & 0xFF) << (8 * i)
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0 and size >= 1:
            self.device.write_byte(self.offset, value & 0xFF)
