"""Instruction byte strings from ../shared/testdata (other disassemblers' test suites).

Only the *bytes* and the modes they are meant for are taken; expected texts always come from
objdump. Formats are described in the corpus README.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from pathlib import Path

TESTDATA = Path(os.environ.get("X86VM_TESTDATA", Path(__file__).resolve().parents[2].parent
                                / "shared" / "testdata"))
if not TESTDATA.is_dir():
    TESTDATA = Path("/work/shared/testdata")

_FADEC = re.compile(r'^\s*(TEST|TEST32|TEST64|TEST3264)\(\s*("(?:[^"\\]|\\.)*")')
_FADEC_MODES = {"TEST": (32, 64), "TEST32": (32,), "TEST64": (64,), "TEST3264": (32, 64)}


def golang_x86asm() -> Iterator[tuple[bytes, tuple[int, ...]]]:
    """(bytes, modes) from golang-x86asm-decode.txt (one line per mode/syntax; deduplicated)."""
    seen: dict[bytes, set[int]] = {}
    path = TESTDATA / "golang-x86asm-decode.txt"
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 2 or "|" not in fields[0]:
            continue
        code = bytes.fromhex(fields[0].split("|")[0])
        seen.setdefault(code, set()).add(int(fields[1]))
    for code, modes in seen.items():
        yield code, tuple(sorted(modes))


def fadec() -> Iterator[tuple[bytes, tuple[int, ...]]]:
    path = TESTDATA / "fadec-decode-test.inc"
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _FADEC.match(line)
        if not match:
            continue
        text = ast.literal_eval(match.group(2))
        yield text.encode("latin-1"), _FADEC_MODES[match.group(1)]


def iced(bits: int) -> Iterator[tuple[bytes, tuple[int, ...]]]:
    path = TESTDATA / f"iced-InstructionInfos{bits}.txt"
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or "," not in line:
            continue
        try:
            yield bytes.fromhex(line.split(",", 1)[0]), (bits,)
        except ValueError:
            continue


def snippets_by_mode() -> dict[int, list[bytes]]:
    """Every distinct byte string of the three corpora, grouped by the mode it is meant for."""
    out: dict[int, dict[bytes, None]] = {16: {}, 32: {}, 64: {}}
    sources = [golang_x86asm(), fadec(), iced(16), iced(32), iced(64)]
    for source in sources:
        for code, modes in source:
            if not code or len(code) > 15:
                continue
            for mode in modes:
                out[mode].setdefault(code, None)
    return {mode: list(codes) for mode, codes in out.items()}
