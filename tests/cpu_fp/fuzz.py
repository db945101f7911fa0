"""Differential test of x86vm's floating point against the host CPU.

    PYTHONPATH=src python3 tests/cpu_fp/fuzz.py N [SEED] [FAMILY...]

runs N random and edge-case operand sets per operation (under every rounding mode, precision
control and a mix of exception masks), through the gcc-built harness and through x86vm, and
prints per operation the number of cases and mismatches (with the first few mismatches).
Exit status 1 when anything mismatched.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import fpgen as gen  # noqa: E402
import fpsse  # noqa: E402
import fpsse as sse_model  # noqa: E402
import fpx87 as x87_model  # noqa: E402
from fphost import Oracle  # noqa: E402

from x86vm.cpu.fp.core import F32, F64, F80  # noqa: E402

Case = tuple[str, int, int, int]


def _cw(rng: random.Random, unmasked_ok: bool = True) -> int:
    pc = rng.choice((0, 2, 3, 3, 1))
    rc = rng.randrange(4)
    masks = 0x3F
    if unmasked_ok and rng.randrange(4) == 0:
        masks = rng.getrandbits(6)
    return 0x40 | (rc << 10) | (pc << 8) | masks


def _mxcsr(rng: random.Random) -> int:
    rc = rng.randrange(4)
    ftz = rng.randrange(3) == 0
    daz = rng.randrange(3) == 0
    masks = 0x3F if rng.randrange(4) else rng.getrandbits(6)  # unmasked: the case faults
    return ((masks << 7) | (rc << 13) | (0x8000 if ftz else 0) | (0x40 if daz else 0))


def _x87_bin(op: str, kind: str) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        a, b = gen.pair(rng, F80, kind)
        return op, _cw(rng), a, b
    return make


def _x87_un(op: str, masks_ok: bool = True) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        return op, _cw(rng, masks_ok), gen.value(rng, F80), 0
    return make


def _x87_mem(op: str, fmt) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        a = gen.value(rng, F80)
        b = gen.value(rng, fmt)
        if rng.randrange(2):  # bring b near a's magnitude
            from x86vm.cpu.fp.ops import convert
            b2, _ = convert(F80, fmt, a)
            b = b2 ^ rng.getrandbits(4)
        return op, _cw(rng), a, b
    return make


def _x87_scale(rng: random.Random) -> Case:
    a = gen.value(rng, F80)
    b = gen.value(rng, F80) if rng.randrange(3) == 0 else \
        gen.normal(rng, F80, F80.bias + rng.randrange(0, 16))
    return "fscale", _cw(rng), a, b


def _x87_prem(op: str) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        a, b = gen.pair(rng, F80)
        if rng.randrange(2):
            ea = a >> 64 & 0x7FFF
            b = gen.normal(rng, F80, ea - rng.randrange(0, 200))
        return op, _cw(rng), a, b
    return make


def _x87_imem(op: str, width: int) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        a = gen.value(rng, F80)
        return op, _cw(rng), a, rng.getrandbits(rng.randrange(1, width + 1))
    return make


def _x87_ld(op: str, fmt) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        return op, _cw(rng), gen.value(rng, fmt), 0
    return make


def _sse_bin(op: str, fmt, kind: str = "") -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        a, b = gen.pair(rng, fmt, kind)
        return op, _mxcsr(rng), a, b
    return make


def _sse_un(op: str, fmt) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        return op, _mxcsr(rng), gen.value(rng, fmt), 0
    return make


def _sse_imm(prefix: str, fmt, count: int, unary: bool) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        a, b = gen.pair(rng, fmt)
        if rng.randrange(8) == 0:
            b = a
        return f"{prefix}{rng.randrange(count)}", _mxcsr(rng), a, 0 if unary else b
    return make


def _sse_cvi(op: str, fmt) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        if rng.randrange(2):
            a = gen.value(rng, fmt)
        else:  # near the integer range limits and small magnitudes
            e = fmt.bias + rng.choice((rng.randrange(-3, 66), 31, 30, 62, 63, 15, 0, -1))
            a = gen.normal(rng, fmt, e)
        return op, _mxcsr(rng), a, 0
    return make


def _sse_civ(op: str, width: int) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        n = rng.randrange(1, width + 1)
        v = rng.getrandbits(n) | (1 << (n - 1))
        if rng.randrange(2):
            v = -v
        return op, _mxcsr(rng), v & ((1 << width) - 1), 0
    return make


def _x87_fist(op: str) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        if rng.randrange(2):
            a = gen.value(rng, F80)
        else:
            a = gen.normal(rng, F80, F80.bias + rng.choice((rng.randrange(-3, 66), 15, 31, 63)))
        return op, _cw(rng), a, 0
    return make


FAMILIES: dict[str, list[tuple[str, Callable[[random.Random], Case]]]] = {
    "x87-arith": [(o, _x87_bin(o, k)) for o, k in
                  (("fadd", "add"), ("fsub", "add"), ("fmul", "mul"), ("fdiv", "div"))]
    + [(o, _x87_mem(o, f)) for o, f in
       (("fadd32", F32), ("fadd64", F64), ("fmul32", F32), ("fdiv64", F64))]
    + [("fiadd16", _x87_imem("fiadd16", 16)), ("fimul32", _x87_imem("fimul32", 32))],
    "x87-unary": [(o, _x87_un(o)) for o in ("fsqrt", "frndint", "fabs", "fchs", "fxtract")],
    "x87-helpers": [("fscale", _x87_scale), ("fprem", _x87_prem("fprem")),
                    ("fprem1", _x87_prem("fprem1"))],
    "x87-compare": [(o, _x87_bin(o, "")) for o in ("fcom", "fucom", "fcomi", "fucomi")]
    + [("fcom32", _x87_mem("fcom32", F32)), ("fcomp64", _x87_mem("fcomp64", F64)),
       ("ftst", _x87_un("ftst"))],
    "x87-convert": [("fld32", _x87_ld("fld32", F32)), ("fld64", _x87_ld("fld64", F64)),
                    ("fst32", _x87_un("fst32")), ("fst64", _x87_un("fst64"))]
    + [(o, _x87_fist(o)) for o in ("fist16", "fist32", "fist64", "fisttp16", "fisttp32",
                                   "fisttp64")],
    "sse-arith": [(o + s, _sse_bin(o + s, f, k)) for s, f in (("ss", F32), ("sd", F64))
                  for o, k in (("add", "add"), ("sub", "add"), ("mul", "mul"), ("div", "div"),
                               ("min", ""), ("max", ""))]
    + [("sqrtss", _sse_un("sqrtss", F32)), ("sqrtsd", _sse_un("sqrtsd", F64))],
    "sse-compare": [("cmpss", _sse_imm("cmpss", F32, 32, False)),
                    ("cmpsd", _sse_imm("cmpsd", F64, 32, False))]
    + [(o, _sse_bin(o, f)) for o, f in (("comiss", F32), ("ucomiss", F32), ("comisd", F64),
                                        ("ucomisd", F64))],
    "sse-convert": [("cvtss2sd", _sse_un("cvtss2sd", F32)), ("cvtsd2ss", _sse_un("cvtsd2ss", F64)),
                    ("roundss", _sse_imm("roundss", F32, 16, True)),
                    ("roundsd", _sse_imm("roundsd", F64, 16, True))]
    + [(f"cvt{t}{s}2si{w}", _sse_cvi(f"cvt{t}{s}2si{w}", f)) for t in ("", "t")
       for s, f in (("ss", F32), ("sd", F64)) for w in (32, 64)]
    + [(f"cvtsi2{s}{w}", _sse_civ(f"cvtsi2{s}{w}", w)) for s in ("ss", "sd") for w in (32, 64)],
}


def _x87_state(op: str) -> Callable[[random.Random], Case]:
    def make(rng: random.Random) -> Case:
        if op in ("mmx", "mmxemms"):
            return op, 0x37F, rng.getrandbits(64), rng.getrandbits(64)
        if op == "fstcw":
            return op, rng.getrandbits(16) | 0x3F, 0, 0
        if op == "fconst":
            return op, _cw(rng, False), rng.randrange(7), 0
        if op == "fbld":
            digits = rng.randrange(1, 19)
            v = int("".join(str(rng.randrange(10)) for _ in range(digits)), 16)
            return op, _cw(rng, False), v | (rng.randrange(2) << 79), 0
        if op == "fbstp":
            if rng.randrange(2):
                a = gen.value(rng, F80)
            else:
                a = gen.normal(rng, F80, F80.bias + rng.randrange(-2, 64))
            return op, _cw(rng, False), a, 0
        if op == "fxam":  # B = 0xe: the harness examines an empty ST(0)
            return op, _cw(rng, False), gen.value(rng, F80), 0xE if rng.randrange(8) == 0 else 0
        return op, _cw(rng, False), gen.value(rng, F80), gen.value(rng, F80)
    return make


def _sse_packed(op: str) -> Callable[[random.Random], Case]:
    fmt = F64 if op.endswith("pd") or op.startswith("dppd") else F32
    n = 128 // fmt.width

    def make(rng: random.Random) -> Case:
        a = b = 0
        for i in range(n):
            x, y = gen.pair(rng, fmt, "mul" if op.startswith("dp") else "add")
            a |= x << (i * fmt.width)
            b |= y << (i * fmt.width)
        return op, _mxcsr(rng), a, b
    return make


FAMILIES["sse-packed"] = [(o, _sse_packed(o)) for o in fpsse._PACKED]


FAMILIES["x87-state"] = [(o, _x87_state(o)) for o in
                         ("fsave", "fsave16", "fxsave", "mmx", "mmxemms", "fbstp", "fbld",
                          "fconst", "fxam", "fstcw")]
FAMILIES["x87-state"] += [(o, _x87_bin(o, "")) for o in ("funder", "fover")]
# bytes of the images that hold the last instruction/data pointers and opcode (set by the
# core per instruction, not modelled here) and FXSAVE's MXCSR_MASK (the host's has bit 17)
_POINTER_BYTES = {"fsave": range(12, 28), "fsave16": range(6, 14), "fxsave": range(6, 24),
                  "mmx": range(12, 28), "mmxemms": range(12, 28)}


def model(op: str, ctl: int, a: int, b: int) -> str:
    if op[0] == "f" or op.startswith("mmx"):
        return x87_model.run(op, ctl, a, b)
    return sse_model.run(op, ctl, a, b)


_F80_RESULT = {"fld32", "fld64", "fxtract", "funder", "fover", "fscale", "fprem", "fprem1",
               "fbld", "fconst", "fiadd16", "fimul32"}


def _canon(op: str, line: str) -> str:
    if op in _POINTER_BYTES:
        b = bytearray(bytes.fromhex(line))
        for i in _POINTER_BYTES[op]:
            b[i] = 0
        if op == "fxsave":
            b[28:32] = bytes(4)
        return b.hex()
    parts = line.split()
    if (op[0] == "f" or op.startswith("mmx")) and parts:
        parts[-1] = f"{int(parts[-1], 16) & x87_model.SW_MASK:04x}"
        if op in _F80_RESULT or op in x87_model._BIN or op in x87_model._MEM \
                or op in x87_model._UNARY:
            parts[:-1] = [f"{int(p, 16):020x}" for p in parts[:-1]]
    return " ".join(parts)


def run(n: int, seed: int, families: list[str], out=sys.stdout, show: int = 3
        ) -> dict[str, tuple[int, int]]:
    """``{op: (cases, mismatches)}``."""
    results: dict[str, tuple[int, int]] = {}
    with Oracle() as oracle:
        for fam in families:
            for name, make in FAMILIES[fam]:
                rng = random.Random(f"{seed}:{name}")
                cases = [make(rng) for _ in range(n)]
                lines = [f"{op} {ctl:x} {a:x} {b:x}" for op, ctl, a, b in cases]
                want = oracle.run(lines)
                bad = 0
                for (op, ctl, a, b), w in zip(cases, want, strict=True):
                    got = model(op, ctl, a, b)
                    if _canon(op, got) != _canon(op, w):
                        bad += 1
                        if bad <= show:
                            print(f"  MISMATCH {op} ctl={ctl:x} a={a:x} b={b:x}: "
                                  f"host {w} x86vm {got}", file=out)
                results[name] = (n, bad)
                print(f"{fam:12} {name:14} {n:8} cases {bad:6} mismatches", file=out)
                out.flush()
    return results


def iter_families(args: list[str]) -> Iterator[str]:
    yield from (args or FAMILIES)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="x87/SSE operations: host FPU vs x86vm")
    parser.add_argument("count", nargs="?", type=int, default=1000, help="cases per operation")
    parser.add_argument("seed", nargs="?", type=int, default=1)
    parser.add_argument("families", nargs="*", help=f"of {', '.join(FAMILIES)} (default all)")
    args = parser.parse_args(argv[1:])
    res = run(args.count, args.seed, list(iter_families(args.families)))
    total = sum(c for c, _ in res.values())
    bad = sum(m for _, m in res.values())
    print(f"total {total} cases, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
