"""The full host-CPU differential run (the default suite runs a sample):

    python3 tests/cpu/diffrun.py [--count N] [--seed S] [--batch B] [--bits 32|64] [FAMILY…]
    python3 tests/cpu/diffrun.py --x87 [--count N]     # the x87 classes only

Prints, per instruction family, the cases and instructions under test run and the mismatches
(with the first few), then the totals and the time taken.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from cpu import families, x87families  # noqa: E402
from cpu.hostcpu import Emu, compare, run_on_host  # noqa: E402

KINDS = {name: (families.generate, compare) for name in families.FAMILIES}
KINDS.update({name: (x87families.generate, x87families.compare)
              for name in x87families.X87_FAMILIES})


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000, help="cases per family")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--bits", type=int, choices=(32, 64), default=64)
    ap.add_argument("--x87", action="store_true", help="run the x87 classes only")
    ap.add_argument("families", nargs="*")
    args = ap.parse_args(argv)
    names = args.families or (list(x87families.X87_FAMILIES) if args.x87 else list(KINDS))
    total_bad = total = insns = 0
    start = time.monotonic()
    for family in names:
        generate, check = KINDS[family]
        cases = generate(family, args.count, args.seed, args.bits)
        bad = []
        for i in range(0, len(cases), args.batch):
            chunk = cases[i:i + args.batch]
            emu = Emu(args.bits)
            for case, host in zip(chunk, run_on_host(chunk, args.bits), strict=True):
                diffs = check(case, host, emu.run(case, host.code))
                if diffs:
                    bad.append(f"  {case.text}: {'; '.join(diffs)}")
        n = sum(getattr(c, "n", 1) for c in cases)
        total += len(cases)
        insns += n
        total_bad += len(bad)
        print(f"{family:9} {len(cases):8} cases {n:8} insns {len(bad):6} mismatches", flush=True)
        for line in bad[:8]:
            print(line)
    print(f"total     {total:8} cases {insns:8} insns {total_bad:6} mismatches "
          f"({args.bits}-bit, {time.monotonic() - start:.0f} s)")
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
