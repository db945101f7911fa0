"""Structured sweep of the opcode space against objdump 2.40 (developer tool).

    python3 tests/tools/isa_sweep.py [--mode 64] [--space legacy|vex|evex] [--syntax att|intel]
                               [--show 40] [--sample N]
    python3 tests/tools/isa_sweep.py --space evex-fields --sample N     (random EVEX fields)

Random bytes rarely reach the corners of the encoding space (an EVEX form with the "wrong"
W, a mandatory prefix a form lacks, an operand cut off by the end of the code).  This builds
one short encoding per point of a grid instead -- every opcode of every map, with each
mandatory prefix (VEX/EVEX pp), W, vector length, EVEX.b, ModRM.reg, a register and a memory
ModRM, a memory ModRM whose displacement is cut off, and VEX/EVEX.vvvv in use or not -- lists
each as its own symbol with objdump and with x86vm, and compares the first instruction of
each.  Mismatches are grouped by where they sit in the grid, with an example each.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import random
import sys
import tempfile

sys.path[:0] = [os.path.join(os.path.dirname(__file__), ".."),
                os.path.join(os.path.dirname(__file__), "..", "..", "src")]

from oracle.compare import objdump_args, our_listing  # noqa: E402
from oracle.elfwriter import write_snippets_elf  # noqa: E402
from oracle.objdump import parse_wide_listing, run_objdump  # noqa: E402
from x86vm.disasm.listing import ListingOptions  # noqa: E402

TAIL = bytes([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99])
LEGACY_PREFIXES = {"-": b"", "66": b"\x66", "F3": b"\xf3", "F2": b"\xf2"}
LEGACY_MAPS = {"1b": b"", "0f": b"\x0f", "0f38": b"\x0f\x38", "0f3a": b"\x0f\x3a"}


MODRM_KINDS = ("reg", "mem", "cut")


def _modrm(reg: int, kind: str) -> tuple[int, bool]:
    """A ModRM with this reg field: a register, memory without displacement, or memory whose
    32-bit displacement the snippet cuts off (True: end the snippet right after it)."""
    return {"reg": (0xC1 | reg << 3, False), "mem": (0x03 | reg << 3, False),
            "cut": (0x83 | reg << 3, True)}[kind]


def _snippet(head: bytes, reg: int, kind: str) -> bytes:
    modrm, cut = _modrm(reg, kind)
    code = head + bytes([modrm])
    return code if cut else code + TAIL


def _legacy_skip(mode: int, mname: str, op: int) -> bool:
    """One-byte opcodes that are prefixes or escapes themselves."""
    return mname == "1b" and (op in (0x0F, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67,
                                     0xF0, 0xF2, 0xF3, 0x9B) or mode == 64 and 0x40 <= op <= 0x4F)


def legacy(mode: int, pname: str, mname: str, op: int, reg: int, kind: str):
    if _legacy_skip(mode, mname, op):
        return None
    head = LEGACY_PREFIXES[pname] + LEGACY_MAPS[mname] + bytes([op])
    return f"legacy {pname} {mname} {op:02x} /{reg} {kind}", _snippet(head, reg, kind)


def vex(mode: int, mmmmm: int, op: int, pp: int, w: int, vl: int, vvvv: int, reg: int,
        kind: str):
    if vvvv != 0xF and reg != 2:        # vvvv in use: one ModRM.reg is enough
        return None
    head = bytes([0xC4, 0xE0 | mmmmm, w << 7 | vvvv << 3 | vl << 2 | pp, op])
    return (f"vex m{mmmmm} {op:02x} pp{pp} W{w} L{vl} v{vvvv:x} /{reg} {kind}",
            _snippet(head, reg, kind))


def evex(mode: int, mm: int, op: int, pp: int, w: int, ll: int, bbit: int, vvvv: int,
         reg: int, kind: str):
    if vvvv != 0xF and reg != 2:
        return None
    p2 = ll << 5 | bbit << 4 | 8 | 1          # V'=1, mask {%k1}
    head = bytes([0x62, 0xF0 | mm, w << 7 | vvvv << 3 | 4 | pp, p2, op])
    return (f"evex m{mm} {op:02x} pp{pp} W{w} LL{ll} b{bbit} v{vvvv:x} /{reg} {kind}",
            _snippet(head, reg, kind))


PREFIX_RUNS = (b"", b"\x66", b"\x67", b"\xf2", b"\xf3", b"\x64", b"\x2e", b"\xf0", b"\x48",
               b"\x41", b"\x66\x67", b"\xf3\xf2")


def evex_fields(mode: int, mm: int, p0_high: int, p1: int, p2: int, op: int, pre: int,
                cut: int):
    """Any EVEX.R/X/B/R', W, vvvv, pp, z, L'L, b, V' and mask (the grid above keeps most of
    them fixed), after a legacy prefix run, with `cut` more bytes (ModRM, SIB, displacement,
    immediate: drawn from the point itself) before the end of the code.  Sample only."""
    prefixes = bytes(b for b in PREFIX_RUNS[pre] if mode == 64 or not 0x40 <= b <= 0x4F)
    rng = random.Random(f"{mm} {p0_high} {p1} {p2} {op} {pre} {cut}")
    tail = bytes(rng.randrange(256) for _ in range(cut))
    p0 = p0_high << 4 | mm
    return (f"evexf m{mm} {op:02x} P0 {p0:02x} P1 {p1 | 4:02x} P2 {p2:02x} pre{pre} cut{cut}",
            prefixes + bytes([0x62, p0, p1 | 4, p2, op]) + tail)


BYTE, REG, BIT = range(256), range(8), (0, 1)
SPACES = {      # space: (builder, the axes of its grid)
    "legacy": (legacy, (tuple(LEGACY_PREFIXES), tuple(LEGACY_MAPS), BYTE, REG, MODRM_KINDS)),
    "vex": (vex, ((1, 2, 3), BYTE, range(4), BIT, BIT, (0xF, 0x9), REG, MODRM_KINDS)),
    "evex": (evex, ((1, 2, 3, 5, 6), BYTE, range(4), BIT, range(4), BIT, (0xF, 0x9), REG,
                    MODRM_KINDS)),
    "evex-fields": (evex_fields, ((1, 2, 3, 5, 6), range(16), BYTE, BYTE, BYTE,
                                  range(len(PREFIX_RUNS)), range(9))),
}


def grid(space: str, mode: int, sample: int | None = None, seed: int = 2026
         ) -> list[tuple[str, bytes]]:
    """Every point of a space (or `sample` points drawn at random) as (label, snippet)."""
    build, axes = SPACES[space]
    if sample is None:
        points = itertools.product(*axes)
    else:
        rng = random.Random(seed)
        points = (tuple(rng.choice(axis) for axis in axes) for _ in range(sample))
    return [item for item in (build(mode, *p) for p in points) if item is not None]


def compare_batch(items: list[tuple[str, bytes]], mode: int, syntax: str
                  ) -> list[tuple[str, str, str]]:
    """(label, objdump's first record, ours) for each item whose first instruction differs."""
    snippets = [code for _, code in items]
    with tempfile.TemporaryDirectory(prefix="x86vm-sweep-") as tmp:
        path = os.path.join(tmp, f"sweep{mode}.o")
        offsets = write_snippets_elf(path, snippets, 64 if mode == 64 else 32)
        want = parse_wide_listing(run_objdump(objdump_args(syntax, mode=mode if mode == 16
                                                           else None), path, cache=False))
        got = parse_wide_listing(our_listing(path, ListingOptions(wide=True), syntax,
                                             mode if mode == 16 else None))
    def fmt(record) -> str:
        return "none" if record is None else f"{record.hex_bytes} {record.text!r}"

    out = []
    for (label, _), offset in zip(items, offsets, strict=True):
        a = want.get(offset, [None])[0]
        b = got.get(offset, [None])[0]
        if a is None or b is None or (a.hex_bytes, a.text) != (b.hex_bytes, b.text):
            out.append((label, fmt(a), fmt(b)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", type=int, choices=[16, 32, 64], default=64)
    parser.add_argument("--space", action="append", choices=sorted(SPACES))
    parser.add_argument("--syntax", choices=["att", "intel"], default="att")
    parser.add_argument("--sample", type=int, help="compare N points of the grid at random")
    parser.add_argument("--show", type=int, default=40, help="mismatch groups shown")
    parser.add_argument("--all", action="store_true", help="print every mismatch")
    args = parser.parse_args()
    total = bad = 0
    groups: collections.Counter = collections.Counter()
    example: dict = {}
    for space in args.space or [s for s in SPACES if s != "evex-fields"]:
        if space == "evex-fields" and not args.sample:
            parser.error("--space evex-fields needs --sample N")
        items = grid(space, args.mode, args.sample)
        for start in range(0, len(items), 40000):
            batch = items[start:start + 40000]
            for label, want, got in compare_batch(batch, args.mode, args.syntax):
                bad += 1
                if args.all:
                    print(f"{label}: objdump {want} | x86vm {got}")
                key = " ".join(label.split()[:3])
                groups[key] += 1
                example.setdefault(key, (label, want, got))
            total += len(batch)
            print(f"[{space} {args.mode}-bit {args.syntax}] {total} encodings, {bad} differ",
                  file=sys.stderr, flush=True)
    for key, count in groups.most_common(args.show):
        label, want, got = example[key]
        print(f"{count:6} {key}\n       e.g. {label}\n         objdump {want}\n"
              f"         x86vm   {got}")
    print(f"{total} encodings ({args.mode}-bit {args.syntax}), {bad} differ in their first "
          f"instruction, {len(groups)} groups")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
