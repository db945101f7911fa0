"""What tracing costs: the run loop with no tracer, with a tracer whose events are off, with
every exit event recorded (KVM and emu), and with instruction tracing (emu).

KVM: bench/exits.py's real-mode ``out %al, $0x80`` loop, one vCPU; the rate is exits per
second. Emu: a real-mode loop of ``LOOP_COUNT`` ``add``/``loop`` iterations between two
``out``s, so that blocks, exits and instructions all count; the rate is instructions retired
per second, and instruction tracing runs fewer exits per round (it is that much slower).
Rounds alternate the configurations so that drift in the host affects each alike; medians of
the rate per second of the vCPU thread's CPU time (the stable measure on a busy host) and of
wall-clock time are printed with the slowdown against no tracer (1.00 = no cost).

Usage: ``python3 bench/trace.py [--exits N] [--rounds R] [--no-kvm]`` (from the repository
root; under ``flock /tmp/x86vm-heavy.lock`` on a shared machine).
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

LOOP_COUNT = 50
# 7c00: b9 32 00   mov $50, %cx
# 7c03: 01 c8      add %cx, %ax
# 7c05: e2 fc      loop 7c03
# 7c07: e6 80      out %al, $0x80
# 7c09: eb f5      jmp 7c00
EMU_LOOP = bytes.fromhex("b93200" "01c8" "e2fc" "e680" "ebf5")

KVM_CONFIGS = {"no tracer": None, "tracer, exits off": "irq:*", "exit:* recorded": "exit:*"}
EMU_CONFIGS = {**KVM_CONFIGS, "insn + exit:*": "insn,exit:*"}
INSN_SHARE = 20  # instruction tracing rounds run 1/20 of the exits


def one_round(machine: Machine, sink: CountingSink, n: int, patterns: str | None
              ) -> tuple[float, float]:
    """``n`` exits through Machine.run; the rate (exits, or instructions on emu) per
    wall-clock second and per CPU second."""
    tracer = Tracer(patterns, ring_size=1 << 14) if patterns else None
    if tracer is not None:
        tracer.attach_exits(machine.backend)
        tracer.attach_backend(machine.backend)
    stats = getattr(machine.backend, "stats", None)
    before = stats()["instructions"] if stats else 0
    sink.count, sink.limit = 0, n
    start, cpu = time.perf_counter(), time.thread_time()
    result = machine.run(ENTRY, timeout=600)
    elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
    if tracer is not None:
        tracer.detach()
        counts = tracer.counts()
        exits = sum(v for k, v in counts.items() if k.startswith("exit:"))
        if "exit:*" in patterns and "(dropped)" not in counts and exits != result.exits:
            raise SystemExit(f"trace.py: {exits} events for {result.exits} exits")
    if result.reason != "done" or sink.count != n:
        raise SystemExit(f"trace.py: round ended early: {result}")
    done = stats()["instructions"] - before if stats else result.exits
    return done / elapsed, done / cpu


def measure(backend: str, configs: dict[str, str | None], image: bytes, exits: int,
            rounds: int) -> dict[str, list[tuple[float, float]]] | None:
    try:
        machine = Machine(memory_size=1 << 20, backend=backend)
    except MachineError as exc:
        print(f"trace.py: {backend}: {exc}", file=sys.stderr)
        return None
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
    with machine:
        machine.memory.write(0x7C00, image)
        sink = CountingSink(machine.request_stop)
        machine.pio.register(BENCH_PORT, 1, sink, "sink")

        def size(patterns: str | None, n: int) -> int:
            return max(1, n // INSN_SHARE) if patterns and "insn" in patterns else n

        for patterns in configs.values():  # warm up every path
            one_round(machine, sink, size(patterns, 200), patterns)
        for _ in range(rounds):
            for name, patterns in configs.items():
                results[name].append(one_round(machine, sink, size(patterns, exits), patterns))
    return results


def report(title: str, unit: str, results: dict[str, list[tuple[float, float]]]) -> None:
    print(title)
    base = {col: statistics.median(r[col] for r in results["no tracer"]) for col in (0, 1)}
    for name in results:
        cells = []
        for label, col in (("cpu", 1), ("wall", 0)):
            rate = statistics.median(r[col] for r in results[name])
            cells.append(f"{label} {rate:10.0f} {unit}/s ({base[col] / rate:6.3f}x)")
        print(f"  {name:18}  " + "   ".join(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exits", type=int, default=5000, help="exits per KVM round")
    parser.add_argument("--emu-exits", type=int, default=4000, help="exits per emu round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-kvm", action="store_true", help="emu only")
    args = parser.parse_args(argv)
    ran = False
    if not args.no_kvm:
        kvm = measure("kvm", KVM_CONFIGS, OUT_LOOP, args.exits, args.rounds)
        if kvm is not None:
            report(f"KVM: port-I/O exits through one vCPU, {args.rounds} rounds of "
                   f"{args.exits} exits, median (slowdown vs no tracer):", "exits", kvm)
            ran = True
    emu = measure("emu", EMU_CONFIGS, EMU_LOOP, args.emu_exits, args.rounds)
    if emu is not None:
        report(f"emu: {LOOP_COUNT * 2 + 3} instructions per exit, {args.rounds} rounds of "
               f"{args.emu_exits} exits ({args.emu_exits // INSN_SHARE} with insn), median "
               "instructions retired (slowdown vs no tracer):", "insns", emu)
        ran = True
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  host load average {load} on {os.cpu_count()} CPUs")
    return 0 if ran else 2


if __name__ == "__main__":
    raise SystemExit(main())
