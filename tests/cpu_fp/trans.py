"""How far x86vm's x87 transcendentals are from the host's (which are not correctly rounded).

    PYTHONPATH=src python3 tests/cpu_fp/trans.py N [SEED]

prints per instruction: cases, how many results are bit-equal, the largest distance in units
in the last place (ulps of the host's result), and how many differ in IE/DE/ZE/OE/UE or class.
"""

from __future__ import annotations

import random
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import fpgen as gen  # noqa: E402
import fpx87  # noqa: E402
from fphost import Oracle  # noqa: E402

from x86vm.cpu.fp import core  # noqa: E402
from x86vm.cpu.fp.core import F80  # noqa: E402


def _near_pow(rng: random.Random, lo: int, hi: int) -> int:
    return gen.normal(rng, F80, F80.bias + rng.randrange(lo, hi))


def _cw(rng: random.Random) -> int:
    return 0x40 | (rng.randrange(4) << 10) | (3 << 8) | 0x3F


def case(op: str, rng: random.Random) -> tuple[str, int, int, int]:
    r = rng.randrange(10)
    if op in ("fsin", "fcos", "fptan", "fsincos"):
        a = gen.value(rng, F80) if r == 0 else _near_pow(rng, *rng.choice(
            ((-80, -55), (-10, 3), (3, 20), (20, 64), (62, 66))))
        return op, _cw(rng), a, 0
    if op == "f2xm1":
        a = gen.value(rng, F80) if r == 0 else _near_pow(rng, rng.randrange(-90, -1), 0)
        return op, _cw(rng), a, 0
    if op == "fyl2xp1":
        a = gen.value(rng, F80) if r == 0 else _near_pow(rng, rng.randrange(-90, -2), -2)
        return op, _cw(rng), a, gen.value(rng, F80)
    if op == "fyl2x":
        a = gen.value(rng, F80) if r == 0 else gen.normal(rng, F80) & ~F80.sign_bit
        if r == 1:
            a = _near_pow(rng, -1, 1) & ~F80.sign_bit
        return op, _cw(rng), a, gen.value(rng, F80)
    a, b = gen.pair(rng, F80)
    return op, _cw(rng), a, b


def _ulps(host: int, mine: int) -> Fraction | None:
    ch, sh, eh, mh = core.unpack(F80, host)
    cm, sm, em, mm = core.unpack(F80, mine)
    if ch not in (core.NORMAL, core.DENORMAL, core.ZERO) or cm != ch and cm not in (
            core.NORMAL, core.DENORMAL, core.ZERO):
        return None if host == mine else Fraction(10**9)
    vh = Fraction(mh) * Fraction(2) ** eh * (-1 if sh else 1)
    vm = Fraction(mm) * Fraction(2) ** em * (-1 if sm else 1)
    ulp = Fraction(2) ** (max(eh + max(mh.bit_length(), 1) - 64, -16445)) if mh else \
        Fraction(2) ** -16445
    return abs(vh - vm) / ulp


OPS = ("fsin", "fcos", "fptan", "fsincos", "fpatan", "f2xm1", "fyl2x", "fyl2xp1")
FLAG_MASK = 0x1F | 0x400  # IE DE ZE OE UE, C2


def run(n: int, seed: int, out=sys.stdout) -> dict[str, tuple[int, int, Fraction, int]]:
    res = {}
    with Oracle() as o:
        for op in OPS:
            rng = random.Random(f"{seed}:{op}")
            cases = [case(op, rng) for _ in range(n)]
            host = o.run([f"{c[0]} {c[1]:x} {c[2]:x} {c[3]:x}" for c in cases])
            equal = bad = 0
            worst = Fraction(0)
            for c, h in zip(cases, host, strict=True):
                m = fpx87.run(*c).split()
                h = h.split()
                if [int(v, 16) for v in m[:-1]] == [int(v, 16) for v in h[:-1]]:
                    equal += 1
                for hv, mv in zip(h[:-1], m[:-1], strict=True):
                    d = _ulps(int(hv, 16), int(mv, 16))
                    if d is not None:
                        worst = max(worst, d)
                if (int(h[-1], 16) ^ int(m[-1], 16)) & FLAG_MASK:
                    bad += 1
                    if bad <= 3:
                        print(f"  FLAGS {c[0]} {c[1]:x} {c[2]:x} {c[3]:x}: host {h} x86vm {m}",
                              file=out)
            res[op] = (n, equal, worst, bad)
            shown = float(min(worst, 10**30))
            print(f"{op:8} {n:7} cases {equal:7} bit-equal  max {shown:.3g} ulp  "
                  f"{bad} flag/C2 differences", file=out)
    return res


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 1)
