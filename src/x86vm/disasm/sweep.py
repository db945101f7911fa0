"""The default listing layout (``ADDR:\\tBYTES\\tTEXT``) of a run of code, fast.

The listing's general loop decodes one instruction, makes its text and lays out its line;
this sweep does the same for the common case with as little Python per instruction as it
can.  It keeps its own trie over the bytes that fix an instruction's length and meaning,
the same paths as the decoder's memo (`x86vm.isa.cache`, learnt from it as the listing
meets them), whose leaves are *plans* for the line of any instruction that reaches them:

* `FIXED`: the decoded core's bytes hold no values (a third of real code): one line tail
  (bytes, padding, text) for all (`FIXED1` when it is one byte long: runs of it, such as
  ``int3`` padding, are listed in blocks);
* `BRANCH`: a relative branch (one rel value; the text ``before + <target> + after``): the
  target is read from the instruction's own bytes and printed as objdump prints addresses,
  the line made by one %-format;
* `BY_BYTES`: any other family (immediates, displacements): the line tail kept by raw
  bytes, else made from the formatter's template of the family (`member_template`: one
  %-format of the bytes and the value for a family of one value), else the core formatted
  with these bytes;
* `ADDRESSED`: a family whose text holds an address (RIP-relative operands): the line tail
  around the address kept by raw bytes (`addressed`), the address printed for each line;
* `OTHER`: a form known by its exact bytes only: line tails by raw bytes, else the general
  path: `decode`, the formatter, the layout;
* `LONG`: an instruction longer than a line (its bytes continue on lines of their own):
  the lines kept by raw bytes, else the general path.

An instruction longer than a line, one crossing the piece's end and bytes neither trie knows
yet take the general path too, so the text is the one the one-instruction-at-a-time
formatter gives (tests/test_disasm_speed.py checks it).
"""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Callable

from x86vm.disasm.common import template_text
from x86vm.isa import Instruction
from x86vm.isa.cache import trie_root
from x86vm.isa.instruction import ADDRESS_MASK, F_DISP, F_IMM, F_MOFFS, F_REL

FIXED, BY_BYTES, OTHER, BRANCH, FIXED1, LONG, ADDRESSED = range(7)  # (tested as literals)
_UNKNOWN = (OTHER, 1 << 62, None)     # a leaf for bytes no trie knows: the general path
_TAILS_LIMIT = 1 << 20          # line tails kept per listing (by raw bytes)
_FLUSH_BYTES = 1 << 15          # code listed between writes
_REL_READERS = {1: struct.Struct("<b").unpack_from, 2: struct.Struct("<h").unpack_from,
                4: struct.Struct("<i").unpack_from}
_VALUE_READERS = {(n, signed): struct.Struct("<" + (code if signed else code.upper())).unpack_from
                  for n, code in ((1, "b"), (2, "h"), (4, "i"), (8, "q"))
                  for signed in (False, True)}
_new_instruction = object.__new__
_OTHER_BYTE: dict[int, re.Pattern] = {}  # byte -> a pattern for any other byte


def _mark(_address: int) -> str:
    return "\0"


def _family_templates(format_text: Callable) -> Callable | None:
    """The ``get`` of the family templates (`common.Template`) behind ``format_text`` when it
    is the plain AT&T or Intel formatter (each keeps them in its `common.Syntax`), else
    None: a family member's text then comes from ``format_text`` itself."""
    for name, function, syntax in (("x86vm.disasm.att", "format_att", "_ATT"),
                                   ("x86vm.disasm.intel", "format_intel", "_INTEL")):
        module = sys.modules.get(name)
        if module is not None and getattr(module, function, None) is format_text:
            return getattr(module, syntax).templates.get
    return None


class PlainSweep:
    """One listing's plan trie and line tails (`sweep` runs it over a piece of a section)."""

    def __init__(self, formatter, per_line: int, wide: bool, wrapped: Callable) -> None:
        self.formatter = formatter
        self.format_text = formatter.format_text
        self.mode = formatter.mode
        self.decoder_trie = trie_root(self.mode)
        self.per_line = per_line
        self.wide = wide                    # -w: a long instruction's bytes on one line
        self.wrapped = wrapped              # (data, pos, stop, address, length, text, width,
        #                                      per_line, wide) -> the lines of any instruction
        self.padding = ["   " * max(0, per_line - n) for n in range(min(per_line, 15) + 1)]
        self.trie: dict = {}                # shape bytes -> plan leaf (see the docstring)
        self.tails: dict[bytes, str] = {}   # raw bytes -> line after the address
        self.endings: dict[str, list[str]] = {}     # see `run`
        self.long_lines: dict[bytes, tuple] = {}    # raw bytes -> (first, continuations)
        self.templates_get = _family_templates(self.format_text)
        self.members: dict = {}     # BY_BYTES core -> how members print (or False)
        self.addressed: dict[bytes, tuple] = {}     # raw bytes -> ADDRESSED line parts

    def learn(self, data: bytes, pos: int) -> tuple:
        """The leaf for the instruction at ``data[pos:]`` from the decoder's memo, added to
        this trie; `_UNKNOWN` if the memo does not know its bytes yet."""
        node = self.decoder_trie
        i = pos
        try:
            while type(node) is dict:
                node = node[data[i]]
                i += 1
        except (KeyError, IndexError):
            return _UNKNOWN
        leaf = self.plan(node)
        branch = self.trie
        for b in data[pos:i - 1]:
            nxt = branch.get(b)
            if nxt is None:
                nxt = branch[b] = {}
            elif type(nxt) is not dict:     # (not the decoder's paths: never mind)
                return leaf
            branch = nxt
        branch[data[i - 1]] = leaf
        return leaf

    def plan(self, core) -> tuple:
        """The leaf of a decoded core: (kind, length, payload)."""
        length = core.length
        readers = core.readers
        if length > self.per_line and not self.wide:
            return LONG, length, core if readers is not None else None
        if readers is None:
            return OTHER, length, None
        if core.kind != "insn" or not 0 < core.shape <= length or length > self.per_line:
            return BY_BYTES, length, core
        if core.reloc is None:
            if readers:
                return BY_BYTES, length, core
            text = self.format_text(Instruction(core.address, core, core.bytes), None)
            tail = f"{core.bytes.hex(' ')} {self.padding[length]}\t{text}\n"
            return FIXED if length > 1 else FIXED1, length, tail
        if len(readers) != 1 or readers[0][0] != F_REL or \
                readers[0][2] - readers[0][1] not in _REL_READERS:
            return ADDRESSED, length, core
        start, end = readers[0][1], readers[0][2]
        text = self.format_text(Instruction(core.address, core, core.bytes), _mark)
        before, mark, after = text.partition("\0")
        if not mark or "\0" in after:
            return BY_BYTES, length, core
        line = "%s " + self.padding[length].replace("%", "%%") + "\t" + \
            before.replace("%", "%%") + "%s" + after.replace("%", "%%") + "\n"
        return BRANCH, length, ("%x:\t" + line, _REL_READERS[end - start], start,
                                "%*x:\t" + line)

    def member_template(self, core) -> tuple | bool:
        """How a new member of the family ``core`` heads prints, when its line tail is its
        raw bytes and the formatter's `Template` of the family filled with its values (no
        address in its text): for one plain value (line format, reader, its offset, scale,
        mask: ``line % (bytes as hex, value)``), else (template,); False where the general
        path applies.  Asked once the formatter has formatted a member."""
        if self.templates_get is None or core.reloc is not None or core.kind != "insn" or \
                not 0 < core.shape <= core.length <= self.per_line:
            return False
        template = self.templates_get(core)
        if type(template) is not tuple or template[4]:
            return False
        before, args = template[0], template[1]
        readers = core.readers
        if args == (0, 1, 1) and len(readers) == 1:
            kind, start, end, signed, scale, mask = readers[0]
            read = _VALUE_READERS.get((end - start, signed))
            if read is not None and kind in (F_DISP, F_IMM, F_MOFFS) and \
                    (kind == F_DISP or scale == 1) and (kind == F_IMM or not mask):
                line = "%s " + self.padding[core.length].replace("%", "%%") + "\t" + \
                    before + "\n"
                return line, read, start, scale, mask
        return (template,)

    def addressed_parts(self, core, raw: bytes, address: int) -> tuple | None:
        """The line parts of an ADDRESSED instruction (raw bytes and text before its
        address, text after it and the line's end, its target's distance from its address,
        the address mask), kept by raw bytes; None where the general path applies (the
        formatter has not formatted a member of the family yet, or its text is not its
        template's)."""
        length = core.length
        if self.templates_get is None or core.kind != "insn" or \
                not 0 < core.shape <= length <= self.per_line or len(raw) != length:
            return None
        template = self.templates_get(core)
        if type(template) is not tuple or not template[4]:
            return None
        values, target = core.read(raw, address)
        before, after, delta, mask = template_text(
            template, values, 0 if target is None else target - address)
        parts = (f"{raw.hex(' ')} {self.padding[length]}\t{before}", after + "\n", delta,
                 mask)
        if len(self.addressed) < _TAILS_LIMIT:
            self.addressed[raw] = parts
        return parts

    def run(self, data: bytes, pos: int, stop: int, vma: int, width: int, tail: str,
            reloc_at: float, pieces: list[str], write: Callable[[str], object]) -> int:
        """The lines of a run of one 1-byte instruction at ``pos`` (``int3`` or ``nop``
        padding: two megabytes of it in a kernel's .text), up to the next relocation,
        written out block by block; returns where the run ends.  Lines whose addresses
        share all but the last three hex digits are joined from the 4096 possible endings,
        made once per tail."""
        append = pieces.append
        byte = data[pos]
        other = _OTHER_BYTE.get(byte)
        if other is None:
            other = _OTHER_BYTE[byte] = re.compile(b"[^%s]" % re.escape(bytes((byte,))))
        found = other.search(data, pos, stop)
        end = found.start() if found is not None else stop
        if end - 1 > reloc_at:          # the relocations are printed after their line
            end = max(pos + 1, int(reloc_at) + 1)
        endings = self.endings.get(tail)
        if endings is None:
            endings = self.endings[tail] = [f"{low:03x}:\t{tail}" for low in range(4096)]
        address, last = vma + pos, vma + end
        while address < last:
            base = address & ~0xFFF
            upto = min(base + 0x1000, last)
            if base == 0:               # (fewer than four digits: padded differently)
                append("".join(f"{a:{width}x}:\t{tail}" for a in range(address, upto)))
            else:
                head = f"{base:{width}x}"[:-3]
                append(head + head.join(endings[address - base:upto - base]))
            address = upto
            write("".join(pieces))
            pieces.clear()
        return end

    def sweep(self, data: bytes, window: bytes, start: int, pos: int, stop: int, vma: int,
              width: int, symbols, pieces: list[str], write: Callable[[str], object],
              skip_zeroes: bool, reloc_at: float,
              emit_relocs: Callable[[int, bool], float] | None) -> None:
        """List ``data[pos:stop]`` (``window`` = ``data[start:...]``, what the decoder may
        read) into ``pieces``, writing them out every `_FLUSH_BYTES` of code.
        ``skip_zeroes``: runs of zeros as objdump skips them (not with -z);
        ``emit_relocs(pos, line_ended)`` prints the relocations before ``pos`` and returns
        where the next one is (``reloc_at``; None and infinity without relocations)."""
        from x86vm.disasm.listing import zeros_to_skip

        padded = width > 1 and vma + pos < 1 << 4 * (width - 1)  # (else each address fills
        line_head = f"%{width}x:\t" if padded else "%x:\t"     # the width: "%x", faster)
        trie = self.trie
        learn = self.learn
        tails = self.tails
        tails_get = tails.get
        members_get = self.members.get
        addressed_get = self.addressed.get
        padding = self.padding
        long_lines_get = self.long_lines.get
        print_address = symbols.print_address
        printed_get = symbols.printed.get
        mask = ADDRESS_MASK[self.mode & 0xFF]
        decode = self.formatter.decode
        general = self.general
        append = pieces.append
        dict_type = dict
        type_ = type
        new = _new_instruction
        flush_at = pos + _FLUSH_BYTES
        next_event = min(flush_at, reloc_at + 1)    # (reloc_at is an int or infinity)
        while pos < stop:
            limit = next_event if next_event < stop else stop
            while pos < limit:      # (the lines up to the next event: one test a line)
                byte = data[pos]
                if not byte and skip_zeroes:
                    zeros = zeros_to_skip(data, pos, stop)
                    if zeros:
                        append("\t...\n")
                        pos += zeros
                        if pos > reloc_at:
                            reloc_at = emit_relocs(pos, True)
                            next_event = min(flush_at, reloc_at + 1)
                            limit = next_event if next_event < stop else stop
                        continue
                try:
                    leaf = trie[byte]
                    if type_(leaf) is dict_type:
                        leaf = leaf[data[pos + 1]]
                        i = pos + 2
                        while type_(leaf) is dict_type:
                            leaf = leaf[data[i]]
                            i += 1
                except (KeyError, IndexError):     # bytes this trie has not met yet
                    leaf = learn(data, pos)
                kind, length, payload = leaf
                end = pos + length
                if end > stop:
                    pos = general(decode(window, pos - start, vma + pos), data, pos, stop,
                                  line_head, width, print_address, pieces)
                elif kind == 0:             # FIXED
                    append(line_head % (vma + pos))     # (two appends: no concatenation)
                    append(payload)
                    pos = end
                elif kind < 3:              # BY_BYTES, OTHER: line tails by raw bytes
                    raw = data[pos:end]
                    tail = tails_get(raw)
                    if tail is not None:
                        append(line_head % (vma + pos))
                        append(tail)
                        pos = end
                    elif kind == 1:     # BY_BYTES: a new member of a family: its core, its bytes
                        template = members_get(payload)
                        if template:    # its text is its values in the family's template
                            if type(template[0]) is str:    # one value: one %-format
                                line, read, at, scale, value_mask = template
                                value = read(data, pos + at)[0]
                                if scale != 1:
                                    value *= scale
                                if value_mask:
                                    value &= value_mask
                                tail = line % (raw.hex(" "), value)
                            else:
                                tail = f"{raw.hex(' ')} {padding[length]}\t" \
                                    f"{template_text(template[0], payload.read(raw, 0)[0], 0)}\n"
                            if len(tails) < _TAILS_LIMIT:
                                tails[raw] = tail
                            append(line_head % (vma + pos))
                            append(tail)
                            pos = end
                        else:
                            insn = new(Instruction)
                            insn.address = vma + pos
                            insn.core = payload
                            insn.bytes = raw
                            pos = general(insn, data, pos, stop, line_head, width, print_address,
                                          pieces)
                            if template is None:
                                self.members[payload] = self.member_template(payload)
                    else:
                        pos = general(decode(window, pos - start, vma + pos), data, pos, stop,
                                      line_head, width, print_address, pieces)
                elif kind == 3:             # BRANCH
                    line, read, at, padded_line = payload
                    target = (vma + end + read(data, pos + at)[0]) & mask
                    if padded:
                        append(padded_line % (width, vma + pos, data[pos:end].hex(" "),
                                              printed_get(target) or print_address(target)))
                    else:
                        append(line % (vma + pos, data[pos:end].hex(" "),
                                       printed_get(target) or print_address(target)))
                    pos = end
                elif kind == 4:             # FIXED1
                    if end < stop and data[end] == byte:
                        pos = self.run(data, pos, stop, vma, width, payload, reloc_at, pieces,
                                       write)
                    else:
                        append(line_head % (vma + pos))
                        append(payload)
                        pos = end
                elif kind == 6:             # ADDRESSED
                    raw = data[pos:end]
                    parts = addressed_get(raw)
                    if parts is None:
                        parts = self.addressed_parts(payload, raw, vma + pos)
                    if parts is not None:
                        head, after, delta, target_mask = parts
                        address = vma + pos
                        target = (address + delta) & target_mask
                        append(line_head % address + head +
                               (printed_get(target) or print_address(target)) + after)
                        pos = end
                    else:
                        insn = new(Instruction)
                        insn.address = vma + pos
                        insn.core = payload
                        insn.bytes = raw
                        pos = general(insn, data, pos, stop, line_head, width, print_address,
                                      pieces)
                else:                       # LONG
                    raw = data[pos:end]
                    lines = long_lines_get(raw)
                    address = vma + pos
                    if lines is not None:
                        append(line_head % address + lines[0])
                        for offset, rest in lines[1]:
                            append(line_head % (address + offset) + rest)
                        pos = end
                    else:
                        if payload is not None:     # a new member of a family
                            insn = new(Instruction)
                            insn.address = address
                            insn.core = payload
                            insn.bytes = raw
                        else:
                            insn = decode(window, pos - start, address)
                        pos = general(insn, data, pos, stop, line_head, width, print_address,
                                      pieces)
            if pos >= next_event:     # a relocation to print, or output to write
                if pos > reloc_at:
                    reloc_at = emit_relocs(pos, False)
                if pos >= flush_at:     # output streams: a piece every 32 KiB of code
                    write("".join(pieces))
                    pieces.clear()
                    flush_at = pos + _FLUSH_BYTES
                next_event = min(flush_at, reloc_at + 1)

    def general(self, insn: Instruction, data: bytes, pos: int, stop: int, line_head: str,
                width: int, print_address: Callable[[int], str], pieces: list[str]) -> int:
        """The general path for the instruction ``insn`` at ``pos``: format it, lay out its
        lines into ``pieces`` and keep its line tail by raw bytes; returns where it ends."""
        append = pieces.append
        address = insn.address
        text = self.format_text(insn, print_address)
        core = insn.core
        length = core.length
        per_line = self.per_line
        end = pos + length
        if length <= per_line and end <= stop:
            raw = insn.bytes
            tail = f"{raw.hex(' ')} {self.padding[length]}\t{text}\n"
            if core.reloc is None and core.kind == "insn" and \
                    0 < core.shape <= length == len(raw) and \
                    len(self.tails) < _TAILS_LIMIT:
                self.tails[raw] = tail
            append(line_head % address + tail)
        elif end <= stop and not self.wide:     # on lines of their own
            raw = insn.bytes
            lines = (f"{raw[:per_line].hex(' ')} \t{text}\n",
                     [(offset, raw[offset:offset + per_line].hex(" ") + " \n")
                      for offset in range(per_line, length, per_line)])
            if core.reloc is None and core.kind == "insn" and \
                    0 < core.shape <= length == len(raw) and \
                    len(self.long_lines) < _TAILS_LIMIT:
                self.long_lines[raw] = lines
            append(line_head % address + lines[0])
            for offset, rest in lines[1]:
                append(line_head % (address + offset) + rest)
        else:
            append(self.wrapped(data, pos, stop, address, length, text, width, per_line,
                                self.wide))
        return end
