"""The backend-neutral run loop with a scripted backend (no KVM needed).

The scripted backend plays a list of exits the way a vCPU would produce them and records what
the loop gave back for reads — the loop must behave the same for KVM and the emulator.
"""

import threading
import time
from contextlib import nullcontext

import pytest

from x86vm.machine.bus import PortBus
from x86vm.machine.exits import (
    DebugStop,
    Halt,
    Hypercall,
    InternalError,
    IoExit,
    MmioExit,
    Shutdown,
)
from x86vm.machine.memory import GuestMemory
from x86vm.machine.runloop import (
    HYPERCALL_ENOSYS,
    STATUS_INTERNAL_ERROR,
    STATUS_TIMEOUT,
    StopRequest,
    run_loop,
)


class Recorder:
    def __init__(self, value=0):
        self.log = []
        self.value = value

    def read(self, offset, size):
        self.log.append(("r", offset, size))
        return self.value

    def write(self, offset, size, value):
        self.log.append(("w", offset, size, value))


class ScriptedBackend:
    """Returns the scripted exits in order; when they run out, it "spins" (blocks) until
    interrupted, like a guest in a tight loop without exits."""

    name = "scripted"

    def __init__(self, exits, buffered=None):
        self.exits = list(exits)
        self.completed = []
        self.buffered = list(buffered or [])
        self.buffered_writes = self._take_buffered if buffered is not None else None
        self._wake = threading.Event()

    def _take_buffered(self):
        out, self.buffered = self.buffered, []
        return out

    def run(self):
        if self.exits:
            return self.exits.pop(0)
        self._wake.wait(10)
        self._wake.clear()
        return None

    def complete_io(self, exit_):
        self.completed.append((type(exit_).__name__, bytes(getattr(exit_, "data", b"")),
                               getattr(exit_, "ret", None)))

    def interrupt(self):
        self._wake.set()

    def running(self):
        return nullcontext()


def loop(exits, pio=None, mmio=None, timeout=1.0, buffered=None, stop=None, **options):
    backend = ScriptedBackend(exits, buffered)
    pio = pio or PortBus()
    mmio = mmio or GuestMemory().mmio
    stop = stop or StopRequest()
    return run_loop(backend, pio, mmio, stop, timeout, **options), backend


def test_port_writes_and_reads_reach_devices_with_offsets():
    pio = PortBus()
    dev = Recorder(value=0x12345678)
    pio.register(0x3F8, 8, dev, "uart")
    result, backend = loop([
        IoExit(0x3FB, 1, True, bytearray(b"\x80")),
        IoExit(0x3F9, 2, True, bytearray(b"\x34\x12")),
        IoExit(0x3F8, 1, False, bytearray(1)),
        IoExit(0x3F8, 4, False, bytearray(4)),
        Halt(),
    ], pio=pio)
    assert dev.log == [("w", 3, 1, 0x80), ("w", 1, 2, 0x1234), ("r", 0, 1), ("r", 0, 4)]
    # the device's value is cut to the access size before the vCPU sees it
    assert backend.completed == [("IoExit", b"\x78", None), ("IoExit", b"\x78\x56\x34\x12", None)]
    assert (result.status, result.exits) == (0, 5) and "halted" in result.reason


def test_unclaimed_ports_read_all_ones_and_are_counted():
    pio = PortBus()
    result, backend = loop([IoExit(0x99, 2, False, bytearray(2)),
                            IoExit(0x99, 1, True, bytearray(b"\1")), Shutdown()], pio=pio)
    assert backend.completed == [("IoExit", b"\xff\xff", None)]
    assert pio.unclaimed == {(0x99, False): 1, (0x99, True): 1}
    assert result.reason == "guest shut down (triple fault)" and result.status == 0


def test_string_io_is_one_access_per_element():
    pio = PortBus()
    dev = Recorder(value=0xABCD)
    pio.register(0x80, 1, dev)
    loop([IoExit(0x80, 2, True, bytearray(b"\1\0\2\0\3\0"), count=3),
          IoExit(0x80, 2, False, bytearray(4), count=2), Halt()], pio=pio)
    assert dev.log == [("w", 0, 2, 1), ("w", 0, 2, 2), ("w", 0, 2, 3), ("r", 0, 2), ("r", 0, 2)]


def test_string_io_results_are_completed():
    pio = PortBus()
    pio.register(0x80, 1, Recorder(value=0xABCD))
    _, backend = loop([IoExit(0x80, 2, False, bytearray(4), count=2), Halt()], pio=pio)
    assert backend.completed == [("IoExit", b"\xcd\xab\xcd\xab", None)]


def test_mmio_dispatch_and_unclaimed_mmio():
    mem = GuestMemory()
    dev = Recorder(value=0x1122334455667788)
    mem.add_mmio(0xFEB00000, 0x1000, dev, "virtio")
    _, backend = loop([MmioExit(0xFEB00070, 4, True, bytearray(b"\x0f\0\0\0")),
                       MmioExit(0xFEB00008, 8, False, bytearray(8)),
                       MmioExit(0xD0000000, 2, False, bytearray(2)), Halt()], mmio=mem.mmio)
    assert dev.log == [("w", 0x70, 4, 0xF), ("r", 8, 8)]
    assert backend.completed == [("MmioExit", bytes.fromhex("8877665544332211"), None),
                                 ("MmioExit", b"\xff\xff", None)]
    assert mem.mmio.unclaimed[(0xD0000000, False)] == 1


def test_buffered_writes_are_delivered_before_the_exit_they_preceded():
    pio = PortBus()
    mem = GuestMemory()
    log = []

    class Tagged(Recorder):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def write(self, offset, size, value):
            log.append((self.tag, value))

    mem.add_mmio(0xE0000000, 0x1000, Tagged("mmio"))
    pio.register(0x80, 1, Tagged("pio"))
    buffered = [MmioExit(0xE0000000, 4, True, bytearray(b"\1\0\0\0")),
                IoExit(0x80, 1, True, bytearray(b"\2"))]
    loop([IoExit(0x80, 1, True, bytearray(b"\3")), Halt()], pio=pio, mmio=mem.mmio,
         buffered=buffered)
    assert log == [("mmio", 1), ("pio", 2), ("pio", 3)]


def test_a_stop_request_from_a_device_ends_the_run_with_its_status():
    pio = PortBus()
    stop = StopRequest()

    class DebugExit:
        def read(self, offset, size):
            return 0xFF

        def write(self, offset, size, value):
            stop.request((value << 1) | 1, "debug-exit")

    pio.register(0xF4, 1, DebugExit())
    later = Recorder()
    pio.register(0x80, 1, later)
    result, _ = loop([IoExit(0xF4, 1, True, bytearray(b"\x21")),
                      IoExit(0x80, 1, True, bytearray(b"\0"))], pio=pio, stop=stop)
    assert (result.status, result.reason, result.exits) == (0x43, "debug-exit", 1)
    assert later.log == []  # nothing runs after the stop


def test_timeout_interrupts_a_spinning_backend():
    start = time.monotonic()
    result, _ = loop([], timeout=0.2)
    assert result.status == STATUS_TIMEOUT and result.reason == "timeout after 0.2 s"
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("exit_, status, reason", [
    (InternalError("KVM internal error: emulation failure"), STATUS_INTERNAL_ERROR,
     "KVM internal error: emulation failure"),
    (DebugStop(0x1000), 0, "debug stop at 0x1000"),
    (Shutdown("system event: reset"), 0, "guest shut down (system event: reset)"),
])
def test_terminal_exits(exit_, status, reason):
    result, _ = loop([exit_])
    assert (result.status, result.reason) == (status, reason)


def test_hypercalls_are_answered_enosys():
    _, backend = loop([Hypercall(9, (1, 2)), Halt()])
    assert backend.completed == [("Hypercall", b"", HYPERCALL_ENOSYS)]


def test_a_device_exception_ends_the_run():
    pio = PortBus()

    class Broken:
        def read(self, offset, size):
            raise KeyError("register")

        def write(self, offset, size, value):
            pass

    pio.register(0x60, 1, Broken())
    result, _ = loop([IoExit(0x60, 1, False, bytearray(1)), Halt()], pio=pio)
    assert result.status == STATUS_INTERNAL_ERROR and "KeyError" in result.reason


def test_a_debug_stop_pauses_the_run_for_its_handler():
    pio = PortBus()
    dev = Recorder()
    pio.register(0x80, 1, dev)
    seen = []

    def handler(stop):
        seen.append((stop.pc, len(dev.log)))
        return "continue" if len(seen) == 1 else "stop"

    result, _ = loop([DebugStop(0x1000), IoExit(0x80, 1, True, bytearray(b"\1")),
                      DebugStop(0x2000, dr6=0x4000), IoExit(0x80, 1, True, bytearray(b"\2"))],
                     pio=pio, on_debug_stop=handler)
    # the guest went on after the first stop (its write arrived), not after the second
    assert seen == [(0x1000, 0), (0x2000, 1)]
    assert dev.log == [("w", 0, 1, 1)]
    assert (result.status, result.reason, result.exits) == (0, "debug stop at 0x2000", 3)


def test_a_debug_handler_answer_must_be_continue_or_stop():
    result, _ = loop([DebugStop(0x1000)], on_debug_stop=lambda stop: None)
    assert result.status == STATUS_INTERNAL_ERROR and "None" in result.reason


def test_every_access_claimed_or_not_goes_through_the_bus_dispatch():
    """The bus's read/write are the one hook: wrapping them on the instance (as a tracer
    does) sees every access the loop dispatches, and the per-kind counters agree."""
    mem = GuestMemory()
    pio = PortBus()
    pio.register(0x80, 1, Recorder(value=7))
    mem.add_mmio(0xFEB00000, 0x1000, Recorder(value=9))
    traced = []
    for bus in (pio, mem.mmio):
        read, write = bus.read, bus.write
        bus.read = lambda a, s, _r=read, _n=bus.name: traced.append((_n, "r", a)) or _r(a, s)
        bus.write = lambda a, s, v, _w=write, _n=bus.name: traced.append((_n, "w", a)) or _w(
            a, s, v)
    loop([IoExit(0x80, 1, True, bytearray(b"\1")), IoExit(0x81, 1, False, bytearray(1)),
          IoExit(0x80, 1, False, bytearray(1)), IoExit(0x99, 1, True, bytearray(b"\1"), 1),
          IoExit(0x80, 1, True, bytearray(b"\1\2"), count=2),
          MmioExit(0xFEB00000, 4, False, bytearray(4)), MmioExit(0x1000, 4, True, bytearray(4)),
          Halt()], pio=pio, mmio=mem.mmio)
    assert traced == [("pio", "w", 0x80), ("pio", "r", 0x81), ("pio", "r", 0x80),
                      ("pio", "w", 0x99), ("pio", "w", 0x80), ("pio", "w", 0x80),
                      ("mmio", "r", 0xFEB00000), ("mmio", "w", 0x1000)]
    assert pio.stats() == {"reads": 2, "writes": 4, "unclaimed": 2}
    assert mem.mmio.stats() == {"reads": 1, "writes": 1, "unclaimed": 1}


class FakeClock:
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


def test_timers_run_in_deadline_order_and_cancel():
    from x86vm.machine.timers import NEVER, GuestTimers

    clock, wakes, fired = FakeClock(), [], []
    timers = GuestTimers(clock, wakes.append)
    timers.at(300, lambda: fired.append("c"))
    timers.at(100, lambda: fired.append("a"))
    b = timers.at(200, lambda: fired.append("b"))
    timers.at(100, lambda: fired.append("a2"))  # equal deadlines: in the order armed
    assert wakes == [300, 100] and timers.next_deadline == 100
    b.cancel()
    clock.now = 250
    timers.run_due()
    assert fired == ["a", "a2"] and wakes[-1] == 300
    # a callback arming a timer already due runs in the same pass, by its deadline
    timers.at(260, lambda: timers.at(0, lambda: fired.append("late")))
    clock.now = 1000
    timers.run_due()
    assert fired == ["a", "a2", "late", "c"] and wakes[-1] == NEVER
    assert timers.pending() == 0 and timers.fired == 5


def test_run_due_ends_when_a_timer_period_is_shorter_than_its_callback():
    # on the host clock (KVM) a periodic device timer re-arms at now + its minimum period;
    # when its callback takes longer than that, the next deadline has passed before the
    # check: run_due must stop at the deadlines due when it began, or it never returns
    from x86vm.machine.timers import GuestTimers

    clock = FakeClock()
    timers = GuestTimers(clock, lambda deadline: None)
    fired = []

    def storm():
        fired.append(clock.now)
        assert len(fired) < 100, "run_due does not return"
        timers.at(clock.now + 10_000, storm)  # the next period: 10 us from now
        clock.now += 20_000  # the rest of the callback: 20 us of host time

    timers.at(0, storm)
    timers.run_due()
    assert fired == [0]
    timers.run_due()  # the next call (the vCPU ran meanwhile) takes the next one
    assert fired == [0, 20_000]


class TimedBackend(ScriptedBackend):
    """Guest time advances 1 ms per run(); run() returns None at the wake-up deadline."""

    def __init__(self, exits):
        super().__init__(exits)
        self.clock = FakeClock()
        self.clock_ns = self.clock
        self.deadline = None

    def wake_at(self, deadline_ns):
        self.deadline = deadline_ns

    def run(self):
        self.clock.now += 1_000_000
        if self.deadline is not None and self.clock.now >= self.deadline:
            return None
        return super().run()


def test_the_loop_runs_due_timers_on_the_backends_wake_up():
    from x86vm.machine.timers import GuestTimers

    backend = TimedBackend([IoExit(0x80, 1, True, bytearray(b"\1"))] * 10)
    timers = GuestTimers(backend.clock_ns, backend.wake_at)
    stop = StopRequest()
    seen = []
    timers.at(3_500_000, lambda: seen.append(backend.clock.now))
    timers.at(5_000_000, lambda: stop.request(9, "timer"))
    result = run_loop(backend, PortBus(), GuestMemory().mmio, stop, 1.0, timers=timers)
    assert (result.status, result.reason) == (9, "timer")
    assert seen == [4_000_000]  # the first wake-up after 3.5 ms of guest time


def test_a_failing_timer_callback_ends_the_run_like_a_failing_device():
    from x86vm.machine.timers import GuestTimers

    backend = TimedBackend([IoExit(0x80, 1, True, bytearray(b"\1"))] * 10)
    timers = GuestTimers(backend.clock_ns, backend.wake_at)
    timers.at(2_000_000, lambda: 1 / 0)
    result = run_loop(backend, PortBus(), GuestMemory().mmio, StopRequest(), 1.0, timers=timers)
    assert result.status == STATUS_INTERNAL_ERROR
    assert "timer callback" in result.reason and "ZeroDivisionError" in result.reason
