"""Typing a script into a UART as a person at the terminal would (``x86vm run --serial-input``).

A script fed all at once at power-on is lost: until a driver opens the port the receiver is
not listening, and a shell that has not started yet would see its input echoed before its
prompt. :class:`ScriptedInput` instead types one line at a time, each when the guest waits
for input, judged from the UART the way a person judges a terminal:

1. a driver listens: the received-data interrupt is enabled (IER.ERBFI);
2. the previous line has been read: the receive FIFO and the host backlog are empty;
3. the guest has gone quiet: it has transmitted nothing for ``quiet_ns`` of guest time
   (its prompt is out and nothing else is coming).

The check runs every ``poll_ns`` of guest time on the machine's timer service, on the vCPU
thread, so on emu (guest time = retired instructions) two runs type the same bytes at the
same instruction. Lines longer than :data:`CHUNK` bytes are typed in pieces (the rest of a
line follows as soon as the receiver is empty), so the UART's backlog never fills and
``feed`` never blocks the vCPU thread. After the last line nothing
more is typed: the serial line stays open and idle, as a terminal nobody types at.
"""

from __future__ import annotations

from collections.abc import Callable

from x86vm.devices.uart import IER, Uart16550
from x86vm.machine.irq import TimerHandle

POLL_NS = 10_000_000
"""How often (guest time) the UART is looked at."""
QUIET_NS = 50_000_000
"""Guest time without serial output after which the guest is taken to wait for input."""
CHUNK = 4096


class ScriptedInput:
    """Types ``script`` into ``uart`` line by line (see the module docstring)."""

    def __init__(self, uart: Uart16550, script: bytes,
                 at: Callable[[int, Callable[[], None]], TimerHandle],
                 clock_ns: Callable[[], int], *, poll_ns: int = POLL_NS,
                 quiet_ns: int = QUIET_NS) -> None:
        if poll_ns <= 0 or quiet_ns < 0:
            raise ValueError("poll_ns must be positive and quiet_ns not negative")
        self.uart, self.at, self.clock_ns = uart, at, clock_ns
        self.poll_ns, self.quiet_ns = poll_ns, quiet_ns
        self.pending = [(piece, i > 0) for line in script.splitlines(keepends=True)
                        for i, piece in enumerate(_pieces(line))]
        self.typed = 0
        """Pieces (lines, or parts of long lines) typed so far."""
        self._seen_tx = -1
        self._quiet_since = 0
        self._timer: TimerHandle | None = None

    def start(self) -> None:
        """Begin watching the UART (the first look is one poll period from now)."""
        if self.pending and self._timer is None:
            self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def done(self) -> bool:
        return self.typed == len(self.pending)

    def _arm(self) -> None:
        self._timer = self.at(self.clock_ns() + self.poll_ns, self._poll)

    def _poll(self) -> None:
        self._timer = None
        now = self.clock_ns()
        uart = self.uart
        if uart.transmitted != self._seen_tx:
            self._seen_tx, self._quiet_since = uart.transmitted, now
        piece, rest_of_line = self.pending[self.typed]
        waiting = (uart.ier & IER.ERBFI and not uart.rx and not uart.backlog
                   and (rest_of_line or now - self._quiet_since >= self.quiet_ns))
        if waiting:
            uart.feed(piece)
            self.typed += 1
        if not self.done:
            self._arm()


def _pieces(line: bytes) -> list[bytes]:
    return [line[i:i + CHUNK] for i in range(0, len(line), CHUNK)]
