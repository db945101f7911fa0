"""``objdump --visualize-jumps``: ASCII art of the jumps inside a function, as 2.40 draws it.

binutils 2.40 objdump.c: for each symbol's piece of a section, ``disassemble_jumps`` decodes
it from start to end (zeros included) and records every relative jump, conditional jump,
call or loop whose target lies in the piece; jumps to the same target are merged; they are
sorted by span (then by lowest address), and given drawing levels greedily so that jumps on
one level do not overlap.  Each listed line then carries ``(levels + 1) * 3`` characters
after its address (``jump_info_visualize_address``): ``/``, ``\\``, ``+`` or ``>`` where a
jump starts or lands, ``-`` towards the code, ``>`` (or ``X`` where a start and a landing
meet) at the arrow head, ``|`` while a jump passes, and one blank.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Jump:
    """One target and the addresses jumping to it."""

    starts: list[int]
    end: int
    level: int = -1
    low: int = field(init=False)
    high: int = field(init=False)
    color: int = field(init=False)

    def __post_init__(self) -> None:
        self.update()
        self.color = iterative_hash(self.end.to_bytes(8, "little")) & 0xFF

    def update(self) -> None:
        self.low = min(self.end, *self.starts)
        self.high = max(self.end, *self.starts)

    def intersects(self, other: Jump) -> bool:
        return self.high >= other.low and self.low <= other.high


class JumpArt:
    """The jumps of one piece, levelled; `column(address)` is the text for a line."""

    colored = False      # --visualize-jumps=color
    extended = False     # --visualize-jumps=extended-color

    def __init__(self, jumps: list[Jump]) -> None:
        self.jumps = jumps
        self.max_level = max(j.level for j in jumps)
        self.width = (self.max_level + 1) * 3
        # lines come in address order: jumps join the drawing (kept in list order, which
        # decides who draws first) when reached and leave it when passed
        self._waiting = sorted(range(len(jumps)), key=lambda i: jumps[i].low, reverse=True)
        self._active: list[int] = []

    def column(self, address: int) -> str:
        """jump_info_visualize_address, plus print_jump_visualisation's trailing blank (and,
        with colours, its escape sequences)."""
        width = self.width
        line = [" "] * width
        colors = [0] * width
        jumps, waiting, active = self.jumps, self._waiting, self._active
        while waiting and jumps[waiting[-1]].low <= address:
            bisect.insort(active, waiting.pop())
        active[:] = [i for i in active if jumps[i].high >= address]
        for i in active:
            ji = jumps[i]
            if ji.low > address:
                continue
            color = ji.color
            before = line[:]
            offset = (self.max_level - ji.level) * 3
            if address in ji.starts:
                for i in range(offset + 1, width - 1):
                    if line[i] == " ":
                        line[i] = "-"
                last = width - 1
                if line[last] == " ":
                    line[last] = "-"
                elif line[last] == ">":
                    line[last] = "X"
                if line[offset] == " ":
                    if address <= ji.end:
                        line[offset] = "/" if ji.low == address else "+"
                    else:
                        line[offset] = "\\" if ji.high == address else "+"
            elif address == ji.end:
                for i in range(offset + 1, width - 1):
                    if line[i] == " ":
                        line[i] = "-"
                last = width - 1
                if line[last] == " ":
                    line[last] = ">"
                elif line[last] == "-":
                    line[last] = "X"
                if line[offset] == " ":
                    if ji.low < address:
                        line[offset] = ">" if ji.high > address else "\\"
                    else:
                        line[offset] = "/"
            elif line[offset] == " ":
                line[offset] = "|"
            if self.colored:
                for k in range(width):
                    if line[k] != before[k]:
                        colors[k] = color
        if not self.colored:
            return "".join(line) + " "
        return _colored(line + [" "], colors + [0], self.extended)


def _colored(chars: list[str], colors: list[int], extended: bool) -> str:
    """print_jump_visualisation with colours: an escape sequence where the colour changes
    (objdump keeps the last colour in a signed char: colours of 128 and up never compare
    equal to it, so each such character gets its own sequence)."""
    out = []
    last = 0
    for char, color in zip(chars, colors, strict=True):
        if color != last:
            if color:
                out.append(f"\033[38;5;{124 + color % 108}m" if extended
                           else f"\033[{31 + color % 7}m")
            else:
                out.append("\033[0m")
            last = color - 256 if color >= 128 else color
        out.append(char)
    return "".join(out)


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    """The mixing step of Bob Jenkins' lookup2 hash, on 32-bit unsigned words."""
    m = 0xFFFFFFFF
    a = (a - b - c) & m ^ (c >> 13)
    b = (b - c - a) & m ^ (a << 8) & m
    c = (c - a - b) & m ^ (b >> 13)
    a = (a - b - c) & m ^ (c >> 12)
    b = (b - c - a) & m ^ (a << 16) & m
    c = (c - a - b) & m ^ (b >> 5)
    a = (a - b - c) & m ^ (c >> 3)
    b = (b - c - a) & m ^ (a << 10) & m
    c = (c - a - b) & m ^ (b >> 15)
    return a, b, c


def iterative_hash(key: bytes, initval: int = 0) -> int:
    """libiberty's iterative_hash (lookup2): objdump hashes a jump's target with it to pick
    the jump's colour."""
    m = 0xFFFFFFFF
    a = b = 0x9E3779B9
    c = initval
    k = key
    while len(k) >= 12:
        a = (a + int.from_bytes(k[0:4], "little")) & m
        b = (b + int.from_bytes(k[4:8], "little")) & m
        c = (c + int.from_bytes(k[8:12], "little")) & m
        a, b, c = _mix(a, b, c)
        k = k[12:]
    c = (c + len(key)) & m
    rest = k + bytes(11 - len(k))
    c = (c + (int.from_bytes(rest[8:11], "little") << 8)) & m
    b = (b + int.from_bytes(rest[4:8], "little")) & m
    a = (a + int.from_bytes(rest[0:4], "little")) & m
    return _mix(a, b, c)[2]


def levelled(branches: Iterable[tuple[int, int]]) -> JumpArt | None:
    """The art for (source, target) pairs in decoding order, or None when there are none."""
    jumps = [Jump([source], target) for source, target in branches]
    if not jumps:
        return None
    jumps.reverse()                       # disassemble_jumps adds each one at the front
    merged: list[Jump] = []               # jump_info_merge: one jump per target
    by_end: dict[int, Jump] = {}
    for jump in jumps:
        first = by_end.get(jump.end)
        if first is None:
            by_end[jump.end] = jump
            merged.append(jump)
        else:
            first.starts.extend(jump.starts)
            first.update()
    ordered = sorted(merged, key=lambda j: (j.high - j.low, j.low))   # a stable minsort
    level, i = -1, 0
    while i < len(ordered):               # greedy levels: the group is ordered[i:ex]
        level += 1
        ordered[i].level = level
        ex = k = i + 1
        while k < len(ordered):
            candidate = ordered[k]
            if not any(ordered[c].intersects(candidate) for c in range(i, ex)):
                if k != ex:
                    ordered.insert(ex, ordered.pop(k))
                candidate.level = level
                ex += 1
            k += 1
        i = ex
    return JumpArt(ordered)
