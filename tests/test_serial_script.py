"""``x86vm run --serial-input``: a script typed into COM1 line by line, each line once the
guest waits for input (devices/serial_script.py). The driver behaviour is the 16550's: a
driver that listens enables the received-data interrupt (IER bit 0) and reads RBR."""

from __future__ import annotations

import heapq
import itertools
import subprocess
import sys
from pathlib import Path

from x86vm.devices.console import BufferConsole
from x86vm.devices.serial_script import CHUNK, POLL_NS, QUIET_NS, ScriptedInput
from x86vm.devices.uart import Uart16550
from x86vm.machine.irq import NullIrqLine

REPO = Path(__file__).resolve().parent.parent


class Clock:
    """Guest time and ``at`` for the test: ``advance`` runs what comes due."""

    def __init__(self) -> None:
        self.now = 0
        self.heap: list = []
        self.seq = itertools.count()

    def at(self, deadline, callback):
        entry = [deadline, next(self.seq), callback]
        heapq.heappush(self.heap, entry)

        class Handle:
            def cancel(self_inner):
                entry[2] = None
        return Handle()

    def clock_ns(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        end = self.now + ns
        while self.heap and self.heap[0][0] <= end:
            deadline, _, callback = heapq.heappop(self.heap)
            self.now = max(self.now, deadline)
            if callback is not None:
                callback()
        self.now = end


def setup(script: bytes):
    clock, console = Clock(), BufferConsole()
    uart = Uart16550(NullIrqLine(), console)
    typer = ScriptedInput(uart, script, clock.at, clock.clock_ns)
    typer.start()
    return clock, uart, typer


def drain(uart: Uart16550) -> bytes:
    """The guest driver reads RBR while LSR.DR (bit 0) is set."""
    got = bytearray()
    while uart.read(5, 1) & 1:
        got.append(uart.read(0, 1))
    return bytes(got)


def test_nothing_is_typed_until_a_driver_enables_the_receive_interrupt():
    clock, uart, typer = setup(b"uname -a\n")
    clock.advance(10 * QUIET_NS)
    assert typer.typed == 0 and not uart.rx and not uart.backlog
    uart.write(1, 1, 0x01)              # IER.ERBFI
    clock.advance(QUIET_NS + POLL_NS)
    assert drain(uart) == b"uname -a\n"


def test_each_line_waits_for_the_last_to_be_read_and_for_quiet_output():
    clock, uart, typer = setup(b"one\ntwo\nthree")
    uart.write(1, 1, 0x01)
    clock.advance(QUIET_NS + POLL_NS)
    assert typer.typed == 1
    clock.advance(10 * QUIET_NS)        # "one\n" not read yet: nothing more is typed
    assert typer.typed == 1 and drain(uart) == b"one\n"
    uart.write(0, 1, ord("x"))          # the guest answers: output restarts the quiet period
    clock.advance(QUIET_NS - POLL_NS)
    assert typer.typed == 1
    clock.advance(2 * POLL_NS)
    assert drain(uart) == b"two\n"
    clock.advance(QUIET_NS + POLL_NS)
    assert drain(uart) == b"three" and typer.done
    clock.advance(10 * QUIET_NS)        # the script is over: no timer keeps polling
    assert not clock.heap or all(entry[2] is None for entry in clock.heap)


def test_a_long_line_is_typed_in_pieces_without_waiting_for_quiet():
    line = b"x" * (2 * CHUNK + 5) + b"\n"
    clock, uart, typer = setup(line)
    uart.write(1, 1, 0x01)
    got = bytearray()
    for _ in range(20):
        clock.advance(POLL_NS)
        got += drain(uart)              # the echo would make the output busy: not needed
        assert uart.backlog <= CHUNK
    # every piece after the first follows as soon as the receiver is empty
    assert bytes(got) == line and typer.typed == 3


def test_same_script_same_guest_time_is_deterministic():
    def typed_at() -> list[int]:
        clock, uart, typer = setup(b"a\nb\nc\n")
        uart.write(1, 1, 0x01)
        times = []
        while not typer.done:
            clock.advance(POLL_NS)
            if drain(uart):
                times.append(clock.now)
        return times
    assert typed_at() == typed_at()


def test_cli_documents_serial_input_and_refuses_a_missing_file(tmp_path):
    env = {"PYTHONPATH": str(REPO / "src")}
    help_text = subprocess.run([sys.executable, "-m", "x86vm", "run", "--help"], env=env,
                               capture_output=True, text=True, check=True).stdout
    assert "--serial-input FILE" in help_text
    missing = tmp_path / "nope"
    done = subprocess.run([sys.executable, "-m", "x86vm", "run", "--backend", "emu",
                           "--serial-input", str(missing)], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 2 and str(missing) in done.stderr


def test_cli_runs_a_guest_with_serial_input(tmp_path):
    """The bundled guest never listens on COM1: the script waits, the run ends as usual
    (stdin, a pipe with bytes in it, is not the input then)."""
    script = tmp_path / "session"
    script.write_bytes(b"echo never typed\n")
    env = {"PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-m", "x86vm", "run", "--backend", "emu",
                           "--serial-input", str(script), "--timeout", "60"], env=env,
                          input=b"from stdin\n", capture_output=True)
    assert done.returncode == 0, done.stderr
    assert b"Hello from the x86vm guest!" in done.stdout
