"""Port-I/O exits per second: the full run loop against a bare ``KVM_RUN`` loop.

Both loops drive the same vCPU running the same guest, a real-mode ``out %al, $0x80`` in a
tight loop. The *bare* loop is the floor of any monitor written in Python: ``ioctl(KVM_RUN)``
and reading ``kvm_run.exit_reason``, nothing else. The *full* loop is :meth:`Machine.run`:
exit translation into an :class:`IoExit`, the port bus lookup, a device's ``write`` (which
counts and, at the end, asks the machine to stop). Rounds alternate bare/full so that drift
in the host affects both; the median of each is reported, with the ratio full/bare.

Usage: ``python3 bench/exits.py [--exits N] [--rounds R]`` (from the repository root).
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from x86vm.machine.boot.state import real_mode  # noqa: E402
from x86vm.machine.kvm import abi  # noqa: E402
from x86vm.machine.vm import Machine, MachineError  # noqa: E402

BENCH_PORT = 0x80
# 7c00: e6 80   out %al, $0x80
# 7c02: eb fc   jmp 7c00
OUT_LOOP = bytes.fromhex("e680ebfc")
ENTRY = real_mode(0, 0x7C00)


class CountingSink:
    """Counts port writes; after ``limit`` of them asks the machine to stop."""

    def __init__(self, stop) -> None:
        self.stop = stop
        self.count = 0
        self.limit = 0

    def read(self, offset: int, size: int) -> int:
        return 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        self.count += 1
        if self.count == self.limit:
            self.stop(0, "done")


def bare_loop(machine: Machine, n: int) -> tuple[float, float]:
    """``n`` exits with nothing but ``KVM_RUN`` and a read of the exit reason; exits per
    second of wall-clock time and per second of this thread's CPU time."""
    vcpu = machine.backend.vcpu
    machine.backend.set_state(ENTRY)
    vcpu.set_immediate_exit(False)
    run, fd, request, run_map = vcpu._ioctl, vcpu.fd, abi.KVM_RUN, vcpu.run_map
    reason_of = struct.Struct("<I").unpack_from
    offset = abi.RUN_EXIT_REASON
    start, cpu = time.perf_counter(), time.thread_time()
    for _ in range(n):
        run(fd, request, 0)
        if reason_of(run_map, offset)[0] != abi.KVM_EXIT_IO:
            raise SystemExit("bare loop: unexpected exit")
    return n / (time.perf_counter() - start), n / (time.thread_time() - cpu)


def full_loop(machine: Machine, sink: CountingSink, n: int) -> tuple[float, float]:
    """``n`` exits through :meth:`Machine.run` and the port bus to the sink device; exits
    per second of wall-clock time and per second of this thread's CPU time."""
    sink.count, sink.limit = 0, n
    start, cpu = time.perf_counter(), time.thread_time()
    result = machine.run(ENTRY, timeout=60)
    elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
    if result.reason != "done" or sink.count != n:
        raise SystemExit(f"full loop ended early: {result}")
    return result.exits / elapsed, result.exits / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exits", type=int, default=5000, help="exits per round")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    try:
        machine = Machine(memory_size=1 << 20)
    except MachineError as exc:
        print(f"exits.py: {exc}", file=sys.stderr)
        return 2
    with machine:
        machine.memory.write(0x7C00, OUT_LOOP)
        sink = CountingSink(machine.request_stop)
        machine.pio.register(BENCH_PORT, 1, sink, "sink")
        bare_loop(machine, 1000)  # warm up both paths
        full_loop(machine, sink, 1000)
        bare, full = [], []
        for _ in range(args.rounds):
            bare.append(bare_loop(machine, args.exits))
            full.append(full_loop(machine, sink, args.exits))
    print(f"port-I/O exits through one vCPU, {args.rounds} rounds of {args.exits} exits, "
          "median (wall clock | per CPU-second of the vCPU thread):")
    for name, column in (("wall", 0), ("cpu", 1)):
        b = statistics.median(r[column] for r in bare)
        f = statistics.median(r[column] for r in full)
        print(f"  {name:4}  bare KVM_RUN loop {b:8.0f} exits/s ({1e6 / b:5.2f} us)   "
              f"full run loop {f:8.0f} exits/s ({1e6 / f:5.2f} us)   ratio {f / b:.3f}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  target: full/bare >= 0.8; host load average {load} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
