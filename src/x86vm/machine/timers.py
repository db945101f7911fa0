"""The guest-time timer service (:class:`~x86vm.machine.irq.TimerService`) of a machine.

Devices arm callbacks with ``at(deadline_ns, callback)``; guest time is the backend's
``clock_ns`` (the host clock on KVM, retired instructions on emu). Callbacks run on the vCPU
thread, between two ``run()`` calls of the run loop, never concurrently with an exit handler:
a device needs no lock for state its timer shares with its registers.

How a deadline interrupts a running guest: whenever the earliest deadline changes, the queue
tells the backend (``Backend.wake_at``); the backend makes ``run()`` return None once guest
time reaches it (KVM: a host thread kicks the vCPU out of ``KVM_RUN``; emu: the CPU checks at
block boundaries). The loop runs the due callbacks only when ``run()`` returned None, so the
exit hot path pays nothing for timers.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

NEVER = 1 << 63
"""A deadline that never comes: what ``wake_at`` gets when no timer is armed."""

COMPACT_AT = 256
"""Cancelled timers stay in the heap until due; once the heap holds this many entries and
twice as many as after the last sweep, the cancelled ones are swept out. A guest that re-arms
a far-off timer in a loop (each re-arm cancels the previous one) thus keeps the heap at about
twice its live timers, which the devices bound (one each), instead of growing it forever."""


class Timer:
    """The handle ``at`` returns."""

    __slots__ = ("deadline_ns", "callback", "cancelled")

    def __init__(self, deadline_ns: int, callback: Callable[[], None]) -> None:
        self.deadline_ns, self.callback, self.cancelled = deadline_ns, callback, False

    def cancel(self) -> None:
        """The callback will not run (a no-op if it ran already)."""
        self.cancelled = True


class GuestTimers:
    """A deadline-ordered queue of :class:`Timer`; ``at`` may be called from any thread."""

    def __init__(self, clock_ns: Callable[[], int], wake_at: Callable[[int], None]) -> None:
        self.clock_ns = clock_ns
        self._wake_at = wake_at
        self._heap: list[tuple[int, int, Timer]] = []
        self._order = itertools.count()  # equal deadlines run in the order they were armed
        self._lock = threading.Lock()
        self.next_deadline = NEVER
        """The earliest armed deadline (a cancelled one may linger until it is due)."""
        self.fired = 0
        self._compact_at = COMPACT_AT

    def at(self, deadline_ns: int, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the vCPU thread once guest time reaches ``deadline_ns`` (at
        the next chance if it has passed already)."""
        timer = Timer(deadline_ns, callback)
        with self._lock:
            heap = self._heap
            if len(heap) >= self._compact_at:
                heap[:] = [entry for entry in heap if not entry[2].cancelled]
                heapq.heapify(heap)
                self._compact_at = max(COMPACT_AT, 2 * len(heap))
            heapq.heappush(heap, (deadline_ns, next(self._order), timer))
            earlier = deadline_ns < self.next_deadline
            if earlier:
                self.next_deadline = deadline_ns
        if earlier:
            self._wake_at(deadline_ns)
        return timer

    def run_due(self) -> None:
        """Run every callback whose deadline has come by the time this call started (in
        deadline order; one armed by a callback for a time already past runs too), then tell
        the backend the next one. Deadlines that come due while the callbacks run wait for
        the next call: on the host clock, a timer whose period is shorter than its callback
        (a guest's timer storm on a loaded host) would otherwise keep this loop running
        forever, and with it the vCPU thread past any ``--timeout``."""
        now = self.clock_ns()
        while True:
            with self._lock:
                heap = self._heap
                while heap and heap[0][2].cancelled:
                    heapq.heappop(heap)
                if not heap or heap[0][0] > now:
                    self.next_deadline = heap[0][0] if heap else NEVER
                    deadline = self.next_deadline
                    break
                timer = heapq.heappop(heap)[2]
            self.fired += 1
            timer.callback()
        self._wake_at(deadline)

    def pending(self) -> int:
        """How many timers are armed and not cancelled."""
        with self._lock:
            return sum(not t.cancelled for _, _, t in self._heap)
