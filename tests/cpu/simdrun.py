"""The full host-CPU differential run for MMX/SSE (the default suite runs a sample):

    python3 tests/cpu/simdrun.py [--count N] [--seed S] [--bits 64|32] [CLASS...]

Prints, per instruction class, the cases run and the mismatches (with the first few).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from cpu.hostsimd import Emu, compare, run_on_host  # noqa: E402
from cpu.simd_families import FAMILIES, generate  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000, help="cases per class")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--bits", type=int, choices=(32, 64), default=64)
    ap.add_argument("families", nargs="*", default=list(FAMILIES))
    args = ap.parse_args(argv)
    total = total_bad = 0
    t0 = time.time()
    for family in args.families:
        cases = generate(family, args.count, args.seed, args.bits)
        bad = []
        for i in range(0, len(cases), args.batch):
            chunk = cases[i:i + args.batch]
            emu = Emu(args.bits)
            for case, host in zip(chunk, run_on_host(chunk, args.bits), strict=True):
                diffs = compare(case, host, emu.run(case, host.code))
                if diffs:
                    bad.append(f"  {case.text}: {'; '.join(diffs)}")
        total += len(cases)
        total_bad += len(bad)
        print(f"{family:8} {len(cases):8} cases {len(bad):6} mismatches", flush=True)
        for line in bad[:8]:
            print(line)
    print(f"total    {total:8} cases {total_bad:6} mismatches  ({time.time() - t0:.0f} s)")
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
