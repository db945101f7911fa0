"""The host-CPU differential run: the full run from the command line, and the default suite's
sample (tests/test_cpu_hostdiff.py) through the same :func:`run_classes`:

    python3 tests/cpu/diffrun.py [--count N | --total N] [--seed S] [--batch B]
                                 [--bits 32|64] [--integer] [--x87] [--simd] [CLASS…]

Every class — the integer families (cpu/families.py), x87 (cpu/x87families.py) and MMX/SSE
(cpu/simd_families.py) — runs its random cases natively in a gcc-built harness and on the
emulator from the same state and compares what the SDM defines. ``--total N`` picks the
cases per class so the instructions run reach N. Prints, per class, the cases, instructions
and mismatches (with the first few), then the totals and the time; exits 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from cpu import families, hostcpu, simd_families, x87families  # noqa: E402


class Kind(NamedTuple):
    group: str
    generate: Callable      # (class, count, seed, bits) -> cases
    compare: Callable       # (case, host outcome, emulator outcome) -> differences


KINDS = {name: Kind("integer", families.generate, hostcpu.compare) for name in families.FAMILIES}
KINDS.update({name: Kind("x87", x87families.generate, x87families.compare)
              for name in x87families.X87_FAMILIES})
KINDS.update({name: Kind("simd", simd_families.generate, hostcpu.compare)
              for name in simd_families.FAMILIES})


class ClassResult(NamedTuple):
    cases: int
    insns: int
    mismatches: list[str]


def run_classes(names: Sequence[str], count: int, seed: int, bits: int, batch: int = 2000
                ) -> dict[str, ClassResult]:
    """``count`` cases of each class in ``names`` on the host and the emulator, in harnesses
    of up to ``batch`` cases (the SIMD classes apart from the others, as the harness wants).
    A case that differs runs once more on the host alone before it counts: a preempted
    harness process loses the x87 pointers (AMD's XRSTOR zeroes FIP/FOP/FDP when ES is
    clear)."""
    cases = {name: KINDS[name].generate(name, count, seed, bits) for name in names}
    bad: dict[str, list[str]] = {name: [] for name in names}
    for simd in (False, True):
        flat = [(name, case) for name in names if (KINDS[name].group == "simd") == simd
                for case in cases[name]]
        for i in range(0, len(flat), batch):
            chunk = flat[i:i + batch]
            emu = hostcpu.Emu(bits)
            hosts = hostcpu.run_on_host([case for _, case in chunk], bits)
            for (name, case), host in zip(chunk, hosts, strict=True):
                got = emu.run(case, host.code)
                compare = KINDS[name].compare
                if compare(case, host, got):
                    diffs = compare(case, hostcpu.run_on_host([case], bits)[0], got)
                    if diffs:
                        bad[name].append(f"  {case.text}: {'; '.join(diffs)}")
    return {name: ClassResult(len(cases[name]), sum(getattr(c, "n", 1) for c in cases[name]),
                              bad[name]) for name in names}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10000, help="cases per class")
    ap.add_argument("--total", type=int, help="instructions to reach over all classes")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--bits", type=int, choices=(32, 64), default=64)
    for group in ("integer", "x87", "simd"):
        ap.add_argument(f"--{group}", action="store_true", help=f"the {group} classes")
    ap.add_argument("classes", nargs="*")
    args = ap.parse_args(argv)
    groups = {g for g in ("integer", "x87", "simd") if getattr(args, g)}
    names = args.classes or [n for n, k in KINDS.items() if not groups or k.group in groups]
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        ap.error(f"unknown class {', '.join(unknown)}; known: {', '.join(KINDS)}")
    count = math.ceil(args.total / len(names)) if args.total else args.count
    total = insns = total_bad = 0
    start = time.monotonic()
    print(f"{'class':10} {'group':8} {'cases':>9} {'insns':>9} {'mismatches':>10}")
    for name in names:
        cases, n, bad = run_classes([name], count, args.seed, args.bits, args.batch)[name]
        total, insns, total_bad = total + cases, insns + n, total_bad + len(bad)
        print(f"{name:10} {KINDS[name].group:8} {cases:9,} {n:9,} {len(bad):10}", flush=True)
        for line in bad[:8]:
            print(line)
    print(f"{'total':10} {'':8} {total:9,} {insns:9,} {total_bad:10}   ({args.bits}-bit, "
          f"{time.monotonic() - start:.0f} s)")
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
