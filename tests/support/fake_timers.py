"""A guest-time service for device tests whose clock moves only when told (machine/irq.py's
TimerService): the probes and the board's fakes run in zero time."""

from __future__ import annotations


class FakeTimers:
    """A TimerService whose clock only moves when told (the probes run in zero time)."""

    def __init__(self, now: int = 0) -> None:
        self.now = now
        self.pending: list[tuple[int, int, object]] = []
        self.seq = 0

    def clock_ns(self) -> int:
        return self.now

    def at(self, deadline_ns, callback):
        self.seq += 1
        entry = [deadline_ns, self.seq, callback, False]
        self.pending.append(entry)
        return _Handle(entry)

    def advance(self, ns: int, *, limit: int = 1_000_000) -> int:
        """Move the clock forward, running due callbacks in deadline order; returns how many
        ran (``limit`` guards a runaway model)."""
        target = self.now + ns
        ran = 0
        while True:
            live = [e for e in self.pending if not e[3]]
            self.pending = live
            due = [e for e in live if e[0] <= target]
            if not due:
                break
            entry = min(due, key=lambda e: (e[0], e[1]))
            self.pending.remove(entry)
            self.now = max(self.now, entry[0])
            entry[2]()
            ran += 1
            if ran >= limit:
                raise RuntimeError("timer callbacks do not stop")
        self.now = target
        return ran


class _Handle:
    def __init__(self, entry) -> None:
        self.entry = entry

    def cancel(self) -> None:
        self.entry[3] = True
