"""Differential check of the decoder and both formatters against objdump 2.40.

    python3 tests/tools/isa_compare.py [--intel] [--mode 64] [--limit N] FILE|ELF...

ELF files: the .text section at its address; other files: raw code at 0.  Decodes at every
address objdump decodes (so one mismatch cannot desynchronise the rest), and prints the
mismatch counts and the most frequent mismatch patterns with examples.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from oracle.objdump import objdump  # noqa: E402
from x86vm.disasm.att import format_att  # noqa: E402
from x86vm.disasm.intel import format_intel  # noqa: E402
from x86vm.isa import decode  # noqa: E402


def load_code(path: str) -> tuple[bytes, int]:
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"\x7fELF":
        from elftools.elf.elffile import ELFFile
        with open(path, "rb") as f:
            sec = ELFFile(f).get_section_by_name(".text")
            return sec.data(), sec["sh_addr"]
    with open(path, "rb") as f:
        return f.read(), 0


def compare(data: bytes, address: int, mode: int, intel: bool, show: int = 25,
            quiet: bool = False) -> tuple[int, int, int]:
    expected = objdump(data, mode, intel, address)
    fmt = format_intel if intel else format_att
    patterns: collections.Counter = collections.Counter()
    examples: dict = {}
    n = len_bad = text_bad = exc = 0
    for addr, length, text in expected:
        n += 1
        off = addr - address
        try:
            insn = decode(data, off, addr, mode)
            got = fmt(insn)
        except Exception as e:  # noqa: BLE001 - report, keep going
            exc += 1
            got, insn = f"EXCEPTION {type(e).__name__}: {e}", None
        if insn is None or insn.length != length:
            len_bad += 1
            key = ("LEN", text.split(" ")[0])
        elif got != text:
            text_bad += 1
            key = ("TEXT", text.split(" ")[0], got.split(" ")[0])
        else:
            continue
        patterns[key] += 1
        examples.setdefault(key, (data[off:off + length].hex(" "), text, got,
                                  insn.length if insn else None))
    if not quiet:
        for key, count in patterns.most_common(show):
            hx, text, got, ln = examples[key]
            print(f"{count:7d} {key}\n        {hx}\n        want {text!r}\n        got  "
                  f"{got!r} len={ln}")
    return n, len_bad, text_bad + exc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--intel", action="store_true")
    ap.add_argument("--mode", type=int, default=64)
    ap.add_argument("--show", type=int, default=25)
    args = ap.parse_args()
    for path in args.files:
        data, address = load_code(path)
        n, lb, tb = compare(data, address, args.mode, args.intel, args.show)
        syntax = "intel" if args.intel else "att"
        print(f"{path} [{syntax}, {args.mode}-bit]: {n} instructions, {lb} length "
              f"mismatches, {tb} text mismatches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
