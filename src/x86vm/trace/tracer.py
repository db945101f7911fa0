"""Event tracing: events enabled before a run, recorded into per-vCPU ring buffers.

Every event has a name ``category:what`` (``exit:io``, ``irq:raise``); ``--trace`` enables
them with comma-separated glob patterns (``exit:*,irq:*``). What is not enabled costs nothing:
the exit events are recorded by a wrapper swapped in for the backend's ``run`` only when one
of them is enabled (the run loop binds ``backend.run`` once per run), so with tracing off the
loop runs the very same code as without tracing. Other events are recorded through
:meth:`Tracer.recorder`, which returns None when the event is off (the caller keeps the
``if record is not None`` out of its hot path, or tests a local).

Recording stores one tuple ``(event id, clock ns, payload)`` into a preallocated slot of the
vCPU's ring (a power-of-two list: the oldest events are overwritten, and counted); it takes
no lock (one writer per ring: its vCPU thread) and formats nothing. The payload is the exit
object itself (backends build a fresh one per exit) or a tuple of ints; text and JSON are
made when the ring is read (:mod:`x86vm.trace.output`).
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from x86vm.machine.exits import (
    DebugStop,
    Halt,
    Hypercall,
    InternalError,
    IoExit,
    MmioExit,
    Shutdown,
)

DEFAULT_RING_SIZE = 1 << 16


@dataclass(frozen=True)
class EventType:
    """A traceable event: its name and the names of its payload fields (for tuples).
    An ``explicit`` event is enabled only by its own name, never by a glob (``*``)."""

    name: str
    fields: tuple[str, ...] = ()
    doc: str = ""
    explicit: bool = False


EXIT_EVENTS: dict[type, EventType] = {
    IoExit: EventType("exit:io", doc="port I/O: port, size, direction, data, count"),
    MmioExit: EventType("exit:mmio", doc="MMIO: guest-physical address, size, direction, data"),
    Halt: EventType("exit:halt", doc="hlt that nothing can wake"),
    Shutdown: EventType("exit:shutdown", doc="triple fault / shutdown"),
    Hypercall: EventType("exit:hypercall", doc="vmcall: nr, args, return value"),
    DebugStop: EventType("exit:debug", doc="breakpoint or single step: pc"),
    InternalError: EventType("exit:internal", doc="the backend could not continue"),
}
OTHER_EVENTS = (
    EventType("irq:raise", ("irq", "level"), "an interrupt line changed level"),
    EventType("irq:inject", ("vector",), "an interrupt delivered to the vCPU"),
    EventType("exception", ("vector", "error_code", "rip"), "an exception raised in the guest"),
    EventType("mode:cr", ("register", "old", "new"), "a control register changed"),
    EventType("dev:read", ("address", "size", "value"), "a device register read"),
    EventType("dev:write", ("address", "size", "value"), "a device register write"),
    EventType("virtio:queue", ("queue", "head", "length"), "a virtqueue buffer processed"),
    EventType("emu:block", ("address", "length", "insns"), "a block translated (emu)"),
    EventType("insn", ("address", "bytes", "bits", "regs"),
              "an instruction retired, with the registers it changed (emu; slow: runs one "
              "instruction at a time)", explicit=True),
)
EVENTS: tuple[EventType, ...] = (*EXIT_EVENTS.values(), *OTHER_EVENTS)
EVENT_IDS: dict[str, int] = {e.name: i for i, e in enumerate(EVENTS)}


class TraceError(ValueError):
    """A ``--trace`` pattern that matches no event, or a bad ring size."""


def select_events(patterns: str) -> frozenset[str]:
    """The event names matched by comma-separated glob ``patterns`` (each must match one)."""
    chosen: set[str] = set()
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            continue
        matched = [name for name in fnmatch.filter(EVENT_IDS, pattern)
                   if name == pattern or not EVENTS[EVENT_IDS[name]].explicit]
        if not matched:
            raise TraceError(f"trace pattern {pattern!r} matches no event (events: "
                             f"{', '.join(EVENT_IDS)})")
        chosen.update(matched)
    return frozenset(chosen)


MAX_RING_SIZE = 1 << 22
"""Events a ring may hold (a slot costs 8 bytes plus the event tuple it keeps)."""


class Ring:
    """A fixed-size ring of event tuples for one vCPU; ``head`` counts every record."""

    __slots__ = ("slots", "mask", "head", "cpu", "tid")

    def __init__(self, size: int, cpu: int) -> None:
        if size < 1 or size & (size - 1):
            raise TraceError(f"ring size {size} is not a power of two")
        if size > MAX_RING_SIZE:
            raise TraceError(f"ring size {size} is larger than {MAX_RING_SIZE}")
        self.slots: list[tuple | None] = [None] * size
        self.mask = size - 1
        self.head = 0
        self.cpu = cpu
        self.tid = threading.get_native_id()

    @property
    def dropped(self) -> int:
        """Events overwritten before they were read."""
        return max(0, self.head - len(self.slots))

    def events(self) -> Iterator[tuple]:
        """The recorded events, oldest first."""
        size = len(self.slots)
        for i in range(max(0, self.head - size), self.head):
            yield self.slots[i & self.mask]


class Tracer:
    """The enabled events and one ring per vCPU; see the module docstring."""

    def __init__(self, patterns: str, ring_size: int = DEFAULT_RING_SIZE,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.enabled = select_events(patterns)
        self.ring_size = ring_size
        self.clock = clock
        self.start_ns = clock()
        self.pid = os.getpid()
        self.rings: dict[int, Ring] = {}
        self._swapped: list[tuple[object, object]] = []
        self._hooked: list[Callable[..., None]] = []
        self._lines: list[object] = []

    def ring(self, cpu: int = 0) -> Ring:
        ring = self.rings.get(cpu)
        if ring is None:
            ring = self.rings[cpu] = Ring(self.ring_size, cpu)
        return ring

    def recorder(self, name: str, cpu: int = 0) -> Callable[..., None] | None:
        """``record(*fields)`` for event ``name`` on ``cpu``'s ring, or None if it is off."""
        if name not in EVENT_IDS:
            raise TraceError(f"unknown trace event {name!r}")
        if name not in self.enabled:
            return None
        ring, event, clock = self.ring(cpu), EVENT_IDS[name], self.clock
        slots, mask = ring.slots, ring.mask

        def record(*fields: int) -> None:
            i = ring.head
            slots[i & mask] = (event, clock(), fields)
            ring.head = i + 1

        return record

    def attach_exits(self, backend: object, cpu: int = 0) -> bool:
        """Swap a recording wrapper in for ``backend.run`` if any exit event is enabled
        (before the run: the loop binds ``run`` when it starts). True if it did."""
        ids = {cls: EVENT_IDS[e.name] for cls, e in EXIT_EVENTS.items() if e.name in self.enabled}
        if not ids:
            return False
        run = backend.run  # type: ignore[attr-defined]
        ring, clock = self.ring(cpu), self.clock
        slots, mask, event_of = ring.slots, ring.mask, ids.get

        def traced_run():  # the recording path: no lock, no formatting
            ex = run()
            if ex is not None:
                event = event_of(ex.__class__)
                if event is not None:
                    i = ring.head
                    slots[i & mask] = (event, clock(), ex)
                    ring.head = i + 1
            return ex

        self._swapped.append((backend, run))
        backend.run = traced_run  # type: ignore[attr-defined]
        return True

    def attach_backend(self, backend: object, cpu: int = 0) -> bool:
        """Hand the enabled events a backend records itself (emu: ``irq:inject``,
        ``exception``, ``mode:cr``, ``emu:block``, ``insn``) to its ``set_trace``; the
        backend asks for each and keeps None for those that are off. True if it has any."""
        set_trace = getattr(backend, "set_trace", None)
        if set_trace is None:
            return False
        set_trace(lambda name: self.recorder(name, cpu))
        self._hooked.append(set_trace)
        return True

    def attach_lines(self, lines: Iterable[object], cpu: int = 0) -> bool:
        """Record ``irq:raise`` from interrupt lines that have a ``trace`` hook (the Python
        chipset's IRQ lines: each level change, ``(irq, level)``) if it is enabled. The
        lines are driven on the vCPU's thread, the writer of ``cpu``'s ring. True if it did."""
        record = self.recorder("irq:raise", cpu)
        if record is None:
            return False
        for line in lines:
            line.trace = record  # type: ignore[attr-defined]
            self._lines.append(line)
        return True

    def detach(self) -> None:
        """Put back what :meth:`attach_exits` swapped and unhook :meth:`attach_backend`
        and :meth:`attach_lines`."""
        while self._swapped:
            backend, run = self._swapped.pop()
            backend.run = run  # type: ignore[attr-defined]
        while self._hooked:
            self._hooked.pop()(lambda name: None)
        while self._lines:
            self._lines.pop().trace = None  # type: ignore[attr-defined]

    def counts(self) -> Counter[str]:
        """Recorded events by name (overwritten ones included)."""
        out: Counter[str] = Counter()
        for ring in self.rings.values():
            for event in ring.events():
                out[EVENTS[event[0]].name] += 1
            if ring.dropped:
                out["(dropped)"] += ring.dropped
        return out
