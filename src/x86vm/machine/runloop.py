"""The run loop: run the vCPU, hand each exit to the buses and devices, resume.

This is the one loop every backend shares (ARCHITECTURE.md, "Exits are backend-neutral"): the
qemu-kvm path of ``KVM_RUN`` returning → look the port or address up on a bus → the device
model emulates the access → the read value is written back → the vCPU re-enters. The loop
knows nothing about KVM; a backend implements :class:`~x86vm.machine.backend.Backend`.

A :class:`DebugStop` (breakpoint, single step) pauses the run: the loop calls the debug
handler (``Machine.on_debug_stop``, e.g. a gdb stub) on the vCPU thread and goes on or ends
the run as it says; without a handler the run ends there.

Ending a run: a device calls ``request_stop``/``request_reset`` (the machine records a
:class:`StopRequest` and calls :meth:`Backend.interrupt`), the guest halts for good, triple
faults, or the backend fails; ``timeout`` is enforced by a timer thread that interrupts the
backend, so a guest spinning without exits still ends on time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal

from x86vm.machine.backend import (  # noqa: F401  (re-exported)
    HYPERCALL_ENOSYS,
    STATUS_INTERNAL_ERROR,
    STATUS_TIMEOUT,
    Backend,
    RunResult,
    StopRequest,
)
from x86vm.machine.bus import MmioBus, PortBus
from x86vm.machine.errors import MachineError  # noqa: F401  (re-exported)
from x86vm.machine.exits import (
    DebugStop,
    Exit,
    Halt,
    Hypercall,
    InternalError,
    IoExit,
    MmioExit,
    Shutdown,
)
from x86vm.machine.timers import GuestTimers

log = logging.getLogger(__name__)

_MASK = (0, 0xFF, 0xFFFF, 0, 0xFFFFFFFF, 0, 0, 0, 0xFFFFFFFFFFFFFFFF)


DebugHandler = Callable[[DebugStop], Literal["continue", "stop"]]
"""Called on the vCPU thread when the backend stops for a debugger (breakpoint, single
step): the run is paused while it runs (it may block, read and load registers, change the
debug control); "continue" resumes the guest, "stop" ends the run."""


def run_loop(backend: Backend, pio: PortBus, mmio: MmioBus, stop: StopRequest,
             timeout: float | None = None, *,
             on_debug_stop: DebugHandler | None = None,
             timers: GuestTimers | None = None) -> RunResult:
    """Run ``backend`` until something ends the run; see the module docstring. ``timers``:
    the guest-time callbacks to run when the backend wakes for them (machine/timers.py)."""
    timer = None
    if timeout is not None:
        def expire() -> None:
            if stop.request(STATUS_TIMEOUT, f"timeout after {timeout:g} s"):
                backend.interrupt()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
    exits = 0
    with backend.running():
        if timer is not None:
            timer.start()
        try:
            exits = _loop(backend, pio, mmio, stop, on_debug_stop, timers)
        finally:
            if timer is not None:
                timer.cancel()
    assert stop.status is not None
    return RunResult(stop.status, stop.reason, exits)


def _loop(backend: Backend, pio: PortBus, mmio: MmioBus, stop: StopRequest,
          on_debug_stop: DebugHandler | None, timers: GuestTimers | None) -> int:
    """The hot loop: port I/O, the common exit, is handled inline with locals only; every
    access goes through its bus's one dispatch (``read``/``write``). Timers are checked only
    when ``run()`` returns None, which is how the backend reports the wake-up it was asked
    for, so exits pay nothing for them."""
    run = backend.run
    complete_io = backend.complete_io
    buffered = backend.buffered_writes
    pio_read, pio_write = pio.read, pio.write
    mask = _MASK
    io_exit, mmio_exit = IoExit, MmioExit
    clock = backend.clock_ns if timers is not None else None
    exits = 0
    ex: Exit | None = None
    try:
        if timers is not None:
            timers.run_due()  # what came due between runs; arms the backend's wake-up
        while stop.status is None:
            ex = run()
            if buffered is not None:
                for write in buffered():
                    _dispatch_write(write, pio, mmio)
            if ex is None:
                if clock is not None and clock() >= timers.next_deadline:
                    timers.run_due()
                continue
            exits += 1
            if ex.__class__ is io_exit:
                if ex.count != 1:
                    _string_io(ex, pio)
                    if not ex.is_write:
                        complete_io(ex)
                elif ex.is_write:
                    data = ex.data
                    pio_write(ex.port, ex.size,
                              data[0] if ex.size == 1 else int.from_bytes(data, "little"))
                else:
                    size = ex.size
                    ex.data[:] = (pio_read(ex.port, size) & mask[size]).to_bytes(size, "little")
                    complete_io(ex)
            elif ex.__class__ is mmio_exit:
                if ex.is_write:
                    mmio.write(ex.gpa, ex.size, int.from_bytes(ex.data, "little"))
                else:
                    value = mmio.read(ex.gpa, ex.size) & mask[ex.size]
                    ex.data[:] = value.to_bytes(ex.size, "little")
                    complete_io(ex)
            else:
                _other_exit(ex, backend, stop, on_debug_stop)
        if buffered is not None:  # writes the guest made before it stopped still arrive
            ex = None
            for write in buffered():
                _dispatch_write(write, pio, mmio)
    except Exception as exc:  # a device model failed: end the run, never the monitor
        log.debug("exit handling failed on %r", ex, exc_info=True)
        what = "a timer callback" if ex is None else repr(ex)
        stop.request(STATUS_INTERNAL_ERROR, f"device error while handling {what}: {exc!r}")
    return exits


def _string_io(ex: IoExit, pio: PortBus) -> None:
    """``rep ins``/``rep outs``: ``count`` elements of ``size`` bytes, one access each."""
    size, data = ex.size, ex.data
    mask = _MASK[size]
    if ex.is_write:
        for i in range(0, size * ex.count, size):
            pio.write(ex.port, size, int.from_bytes(data[i:i + size], "little"))
    else:
        for i in range(0, size * ex.count, size):
            data[i:i + size] = (pio.read(ex.port, size) & mask).to_bytes(size, "little")


def _dispatch_write(write: IoExit | MmioExit, pio: PortBus, mmio: MmioBus) -> None:
    value = int.from_bytes(write.data, "little")
    if isinstance(write, IoExit):
        pio.write(write.port, write.size, value)
    else:
        mmio.write(write.gpa, write.size, value)


def _other_exit(ex: Exit, backend: Backend, stop: StopRequest,
                on_debug_stop: DebugHandler | None) -> None:
    if isinstance(ex, Halt):
        stop.request(0, "guest halted (hlt with no interrupt to wake it)")
    elif isinstance(ex, Shutdown):
        stop.request(0, f"guest shut down ({ex.reason})")
    elif isinstance(ex, InternalError):
        stop.request(STATUS_INTERNAL_ERROR, ex.reason)
    elif isinstance(ex, Hypercall):
        ex.ret = HYPERCALL_ENOSYS  # no hypercalls are implemented
        backend.complete_io(ex)
    elif isinstance(ex, DebugStop):
        if on_debug_stop is None:  # nobody to hand the pause to
            stop.request(0, f"debug stop at {ex.pc:#x}")
            return
        verdict = on_debug_stop(ex)
        if verdict == "stop":
            stop.request(0, f"debug stop at {ex.pc:#x}")
        elif verdict != "continue":
            stop.request(STATUS_INTERNAL_ERROR,
                         f"debug handler returned {verdict!r}, not 'continue' or 'stop'")
    else:
        stop.request(STATUS_INTERNAL_ERROR, f"unknown exit {ex!r}")
