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

    def __post_init__(self) -> None:
        self.update()

    def update(self) -> None:
        self.low = min(self.end, *self.starts)
        self.high = max(self.end, *self.starts)

    def intersects(self, other: Jump) -> bool:
        return self.high >= other.low and self.low <= other.high


class JumpArt:
    """The jumps of one piece, levelled; `column(address)` is the text for a line."""

    def __init__(self, jumps: list[Jump]) -> None:
        self.jumps = jumps
        self.max_level = max(j.level for j in jumps)
        self.width = (self.max_level + 1) * 3
        # lines come in address order: jumps join the drawing (kept in list order, which
        # decides who draws first) when reached and leave it when passed
        self._waiting = sorted(range(len(jumps)), key=lambda i: jumps[i].low, reverse=True)
        self._active: list[int] = []

    def column(self, address: int) -> str:
        """jump_info_visualize_address, plus print_jump_visualisation's trailing blank."""
        width = self.width
        line = [" "] * width
        jumps, waiting, active = self.jumps, self._waiting, self._active
        while waiting and jumps[waiting[-1]].low <= address:
            bisect.insort(active, waiting.pop())
        active[:] = [i for i in active if jumps[i].high >= address]
        for i in active:
            ji = jumps[i]
            if ji.low > address:
                continue
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
        return "".join(line) + " "


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
