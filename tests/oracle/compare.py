"""Compare x86vm's listings with objdump's, instruction by instruction.

Both listings are produced wide (``-w``: every raw byte on the instruction's line) and parsed
into (address, bytes, text) records. A *length mismatch* is an objdump instruction that x86vm
does not list with the same bytes at the same address (different instruction boundaries); a
*text mismatch* has the same bytes but different text. Mismatch patterns are keyed by objdump's
first word, so the most common culprits show at a glance.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from x86vm.disasm.elf import load_elf
from x86vm.disasm.listing import ListingOptions, decoder_formatter, elf_image, write_listing

from .elfwriter import write_snippets_elf
from .objdump import InsnLine, parse_wide_listing, run_objdump

MAX_EXAMPLES = 20


@dataclass
class Tally:
    """Counts of a comparison, with examples and mismatch patterns."""

    instructions: int = 0
    length_mismatches: int = 0
    text_mismatches: int = 0
    exceptions: int = 0
    examples: list[str] = field(default_factory=list)
    patterns: Counter = field(default_factory=Counter)
    #: every mismatch as (objdump's bytes, objdump's record, x86vm's record), records shown as
    #: ``HEX 'TEXT'`` (``none``: no instruction at that address)
    mismatches: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.instructions += other.instructions
        self.length_mismatches += other.length_mismatches
        self.text_mismatches += other.text_mismatches
        self.exceptions += other.exceptions
        room = MAX_EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(other.examples[:room])
        self.patterns.update(other.patterns)
        self.mismatches.extend(other.mismatches)

    @property
    def ok(self) -> bool:
        return not (self.length_mismatches or self.text_mismatches or self.exceptions)

    def summary(self) -> str:
        return (f"{self.instructions} instructions, {self.length_mismatches} length mismatches, "
                f"{self.text_mismatches} text mismatches, {self.exceptions} exceptions")


def _first_word(text: str) -> str:
    return text.split(" ", 1)[0] if text else "(empty)"


def record_text(record: InsnLine | None) -> str:
    """A listing record as the mismatch lists show it: ``HEX 'TEXT'`` (or ``none``)."""
    return "none" if record is None else f"{record.hex_bytes} {record.text!r}"


def compare_records(expected: dict[int, list[InsnLine]], got: dict[int, list[InsnLine]],
                    where: str = "") -> Tally:
    tally = Tally()
    for address in sorted(expected):
        ours = got.get(address, [])
        for i, ref in enumerate(expected[address]):
            tally.instructions += 1
            mine = ours[i] if i < len(ours) else None
            if mine is None or (mine.hex_bytes, mine.length) != (ref.hex_bytes, ref.length):
                tally.length_mismatches += 1
                tally.patterns["length: " + _first_word(ref.text)] += 1
                tally.mismatches.append((ref.hex_bytes, record_text(ref), record_text(mine)))
                if len(tally.examples) < MAX_EXAMPLES:
                    tally.examples.append(
                        f"{where}{address:x}: length: objdump {ref.hex_bytes} {ref.text!r}, "
                        f"x86vm {mine.hex_bytes + ' ' + repr(mine.text) if mine else 'none'}")
            elif mine.text != ref.text:
                tally.text_mismatches += 1
                tally.patterns["text: " + _first_word(ref.text)] += 1
                tally.mismatches.append((ref.hex_bytes, record_text(ref), record_text(mine)))
                if len(tally.examples) < MAX_EXAMPLES:
                    tally.examples.append(f"{where}{address:x}: {ref.hex_bytes}: objdump "
                                          f"{ref.text!r}, x86vm {mine.text!r}")
    return tally


def our_listing(path: str, options: ListingOptions, syntax: str = "att",
                mode: int | None = None) -> str:
    """x86vm's listing of an ELF file, as a string."""
    with open(path, "rb") as stream:
        image = elf_image(load_elf(path, stream))
        if mode is not None:
            image.mode = mode
        out = io.StringIO()
        write_listing(image, decoder_formatter(image.mode, syntax), options, out.write)
    return out.getvalue()


def objdump_args(syntax: str, start: int | None = None, stop: int | None = None,
                 wide: bool = True, mode: int | None = None) -> list[str]:
    args = ["-d"]
    if wide:
        args.append("-w")
    if syntax == "intel":
        args += ["-M", "intel"]
    if mode == 16:
        args += ["-m", "i8086"]
    if start is not None:
        args.append(f"--start-address=0x{start:x}")
    if stop is not None:
        args.append(f"--stop-address=0x{stop:x}")
    return args


def compare_elf(path: str, syntax: str = "att", start: int | None = None,
                stop: int | None = None, mode: int | None = None, cache: bool = True) -> Tally:
    """Per-instruction comparison of one ELF file (or an address range of it) with objdump."""
    expected = parse_wide_listing(
        run_objdump(objdump_args(syntax, start, stop, mode=mode), path, cache=cache))
    options = ListingOptions(start_address=start, stop_address=stop, wide=True)
    try:
        got = parse_wide_listing(our_listing(path, options, syntax, mode))
    except Exception as exc:  # a crash is a finding, reported as such
        tally = Tally(instructions=sum(map(len, expected.values())), exceptions=1)
        tally.examples.append(f"{path}: {type(exc).__name__}: {exc}")
        return tally
    return compare_records(expected, got, where=f"{os.path.basename(path)}:")


def compare_listing_exact(path: str, syntax: str = "att", start: int | None = None,
                          stop: int | None = None) -> tuple[int, int, list[str]]:
    """Line-by-line comparison of the normal (not wide) listing: (lines, differing, examples)."""
    expected = run_objdump(objdump_args(syntax, start, stop, wide=False), path).split("\n")
    options = ListingOptions(start_address=start, stop_address=stop)
    got = our_listing(path, options, syntax).split("\n")
    pairs = list(zip(expected, got, strict=False))
    differing = sum(1 for a, b in pairs if a != b) + abs(len(expected) - len(got))
    examples = [f"line {i}: objdump {a!r} x86vm {b!r}"
                for i, (a, b) in enumerate(pairs) if a != b][:MAX_EXAMPLES]
    return len(expected), differing, examples


def compare_snippets(snippets: Sequence[bytes], mode: int, syntax: str = "att") -> Tally:
    """Each byte string disassembled on its own (a symbol at each) by objdump and by x86vm."""
    bits = 64 if mode == 64 else 32
    with tempfile.TemporaryDirectory(prefix="x86vm-snippets-") as tmp:
        path = os.path.join(tmp, f"snippets{mode}.o")
        write_snippets_elf(path, snippets, bits)
        return compare_elf(path, syntax, mode=mode if mode == 16 else None, cache=False)


def code_mismatches(data: bytes, address: int, mode: int, syntax: str = "att"
                    ) -> tuple[int, list[tuple[str, str, str]]]:
    """Raw code listed by objdump (``-D -b binary``) and decoded by x86vm at each address
    objdump decodes (one mismatch cannot desynchronise the rest): the instruction count and
    every mismatch in length or text, as :attr:`Tally.mismatches` shows them."""
    from objdump_oracle import objdump
    from x86vm.disasm.att import format_att
    from x86vm.disasm.intel import format_intel
    from x86vm.isa import decode

    fmt = format_intel if syntax == "intel" else format_att
    found = []
    expected = objdump(data, mode, syntax == "intel", address)
    for addr, length, text in expected:
        off = addr - address
        want = f"{data[off:off + length].hex()} {text!r}"
        try:
            insn = decode(data, off, addr, mode)
            got = f"{bytes(insn.bytes).hex()} {fmt(insn)!r}"
        except Exception as exc:  # noqa: BLE001 - a crash is a mismatch, reported as such
            got = f"exception {type(exc).__name__}: {exc}"
        if got != want:
            found.append((data[off:off + length].hex(), want, got))
    return len(expected), found
