"""What tracing costs per exit: the run loop with no tracer, with a tracer whose exit events are
off, and with every exit event recorded, on KVM.

The guest is bench/exits.py's real-mode ``out %al, $0x80`` loop, one vCPU. Rounds alternate the
three configurations so that drift in the host affects each alike; medians of exits per
second of the vCPU thread's CPU time (the stable measure on a busy host) and of wall-clock
time are printed with the slowdown against no tracer (1.00 = no cost).

Usage: ``python3 bench/trace.py [--exits N] [--rounds R]`` (from the repository root).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from exits import BENCH_PORT, ENTRY, OUT_LOOP, CountingSink  # noqa: E402
from x86vm.machine.vm import Machine, MachineError  # noqa: E402
from x86vm.trace.tracer import Tracer  # noqa: E402

CONFIGS = {"no tracer": None, "tracer, exits off": "irq:*", "exit:* recorded": "exit:*"}


def one_round(machine: Machine, sink: CountingSink, n: int, patterns: str | None
              ) -> tuple[float, float]:
    """``n`` exits through Machine.run; exits per wall-clock second and per CPU second."""
    tracer = Tracer(patterns, ring_size=1 << 14) if patterns else None
    if tracer is not None:
        tracer.attach_exits(machine.backend)
    sink.count, sink.limit = 0, n
    start, cpu = time.perf_counter(), time.thread_time()
    result = machine.run(ENTRY, timeout=60)
    elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
    if tracer is not None:
        tracer.detach()
        recorded = sum(tracer.counts().values())
        if patterns == "exit:*" and recorded != result.exits:
            raise SystemExit(f"trace.py: {recorded} events for {result.exits} exits")
    if result.reason != "done" or sink.count != n:
        raise SystemExit(f"trace.py: round ended early: {result}")
    return result.exits / elapsed, result.exits / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exits", type=int, default=5000, help="exits per round")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    try:
        machine = Machine(memory_size=1 << 20)
    except MachineError as exc:
        print(f"trace.py: {exc}", file=sys.stderr)
        return 2
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
    with machine:
        machine.memory.write(0x7C00, OUT_LOOP)
        sink = CountingSink(machine.request_stop)
        machine.pio.register(BENCH_PORT, 1, sink, "sink")
        for patterns in CONFIGS.values():  # warm up every path
            one_round(machine, sink, 1000, patterns)
        for _ in range(args.rounds):
            for name, patterns in CONFIGS.items():
                results[name].append(one_round(machine, sink, args.exits, patterns))
    print(f"port-I/O exits through one vCPU, {args.rounds} rounds of {args.exits} exits, "
          "median exits/s (slowdown vs no tracer):")
    base = {col: statistics.median(r[col] for r in results["no tracer"]) for col in (0, 1)}
    for name in CONFIGS:
        cells = []
        for label, col in (("cpu", 1), ("wall", 0)):
            rate = statistics.median(r[col] for r in results[name])
            cells.append(f"{label} {rate:8.0f} ({base[col] / rate:.3f}x)")
        print(f"  {name:18}  " + "   ".join(cells))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  host load average {load} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
