"""The ``Code:`` line of a Linux Oops, disassembled as the kernel's ``scripts/decodecode`` does.

Linux prints the bytes around the faulting instruction as ``Code: 48 89 e5 <0f> 0b 5d c3``
(``show_opcodes`` in arch/x86/kernel/dumpstack.c: the byte at the instruction pointer in
``<..>``; other architectures mark a whole word as ``(....)``). ``scripts/decodecode`` (Linux
6.1) turns that line into two objdump listings: *All code*, with the trapping instruction
marked by ``*`` and ``<-- trapping instruction``, and *Code starting with the faulting
instruction*. This module produces the same text without ``as`` or ``objdump``: the words
become bytes (little-endian), :mod:`x86vm.disasm.listing` lays them out exactly as
``objdump -S`` lays out a relocatable object's ``.text``, and the trapping line is found
with the script's own rule (matching leading code bytes against each listing line).

What the script leaves to the user is read from the log here: the mode (``RIP:``/``RAX:``
register names mean 64-bit, ``EIP:``/``EAX:``/``eax:`` 32-bit; the script needs
``AFLAGS=--32``), and the address of the faulting instruction when the log prints it as a
number (``EIP: 0060:[<c01de48c>]``, ``RIP: 0033:0x7f82b7b2986d``; the script's ``PC=``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from x86vm.disasm.elf import Section
from x86vm.disasm.listing import ListingImage, ListingOptions, decoder_formatter, write_listing
from x86vm.disasm.symbols import SymbolTable

__all__ = ["OopsCode", "DecodeError", "parse_oops", "decodecode"]

WORD_TYPES = {1: "byte", 2: "2byte", 4: "4byte"}
TRAP_SUFFIX = "\t\t<-- trapping instruction"
_CONTINUATION = re.compile(r"[0-9A-Fa-f<>\s]+")
_DROPPED = re.compile(r"/tmp|Disassembly|\.text")  # the script's grep -v, less empty lines
_OBJECT = "/tmp/decodecode.o"  # the script's object lives in mktemp's directory: dropped too
# An instruction pointer with a number: "EIP: 0060:[<c01de48c>]", "RIP: 0010:[<ffff...>]",
# "RIP: 0033:0x7f82b7b2986d", "IP: [<ffffffff811ffa89>]", or the old "printing eip:" line.
_IP_LINE = re.compile(r"\b(?P<name>[RE]?IP|[re]ip):\s*(?:[0-9a-fA-F]{4}:)?"
                      r"(?:\[<(?P<bracketed>[0-9a-fA-F]+)>\]|0x(?P<hex>[0-9a-fA-F]+))?")
_REG64 = re.compile(r"\b(RAX|RBX|RCX|RDX|RSI|RDI|RBP|RSP|R8|R9|R1[0-5]|RIP):")
_REG32 = re.compile(r"\b(EAX|EBX|ECX|EDX|ESI|EDI|EBP|ESP|EIP|eax|ebx|ecx|edx|esi|edi|ebp|esp|"
                    r"eip):")
_REGISTER = re.compile(r"\b([A-Za-z][A-Za-z0-9]{1,5}):\s*(?:[0-9a-fA-F]{4}:)?([0-9a-fA-F]{8,16})"
                       r"\b")


class DecodeError(ValueError):
    """The log has no usable ``Code:`` line (none, or words that are not hex)."""


@dataclass
class OopsCode:
    """What :func:`parse_oops` found in a log."""

    line: str  # the Code: line as the script echoes it (blanks collapsed), with continuations
    code: str  # the words after "Code: ", blanks collapsed, markers kept
    width: int  # bytes per word: 1 on x86 ("<..>"), 2 or 4 for "(....)" words
    mode: int  # 64 or 32
    pc: int | None  # address of the faulting instruction, if the log gives it as a number
    registers: dict[str, int] = field(default_factory=dict)

    @property
    def marker(self) -> int:
        """1-based index of the first ``<`` (else ``(``) in :attr:`code`; 0 if unmarked."""
        index = self.code.find("<")
        if index < 0:
            index = self.code.find("(")
        return index + 1

    @property
    def pc_sub(self) -> int:
        """Bytes from the start of the code to the marked word (the script's ``pc_sub``)."""
        marker = self.marker
        return ((marker - 1) // (2 * self.width + 1)) * self.width if marker else 0


def _collapse(text: str) -> str:
    return " ".join(text.split())


def parse_oops(text: str, mode: int | None = None, pc: int | None = None) -> OopsCode:
    """Find the last ``Code:`` line of ``text`` (as the script does, with following lines of
    hex bytes as continuations), the instruction pointer and the registers printed before it.
    ``mode``/``pc`` override what the log says."""
    lines = text.splitlines()
    code_line, code_index, continuing = None, -1, False
    for index, raw in enumerate(lines):
        if "Code:" in raw:
            code_line, code_index, continuing = raw.strip(), index, True
        elif continuing:
            stripped = _collapse(raw)
            if stripped and _CONTINUATION.fullmatch(stripped):
                code_line = f"{code_line} {stripped}"
            else:
                continuing = False
    if code_line is None:
        raise DecodeError("no 'Code:' line in the log")
    line = _collapse(code_line)
    code = line[line.rindex("Code: ") + 6:] if "Code: " in line else ""
    words = re.sub(r"[<>()]", "", code).split()
    if not words or not all(re.fullmatch(r"[0-9A-Fa-f]+", w) for w in words):
        raise DecodeError(f"the Code: line has no hex code bytes: {line!r}")
    width = (code.find(" ") if " " in code else len(code)) // 2
    if width not in WORD_TYPES or any(len(w) != 2 * width for w in words):
        raise DecodeError(f"the Code: words are not all 1, 2 or 4 bytes wide: {line!r}")

    # The report this Code: line belongs to: from the last "Code:" before it (or the start).
    start = max((i for i in range(code_index) if "Code:" in lines[i]), default=-1) + 1
    report = lines[start:code_index + 1] + lines[code_index + 1:code_index + 12]
    return OopsCode(line, code, width, mode or _mode_of(report), pc if pc is not None
                    else _pc_of(lines[start:code_index + 1]), _registers_of(report))


def _mode_of(report: list[str]) -> int:
    text = "\n".join(report)
    has64, has32 = _REG64.search(text), _REG32.search(text)
    if has32 and not has64:
        return 32
    return 64


def _pc_of(report: list[str]) -> int | None:
    pc = None
    for i, raw in enumerate(report):
        if raw.strip().endswith("printing eip:") and i + 1 < len(report):
            match = re.fullmatch(r"\s*(?:\[[^]]*\]\s*)?([0-9a-fA-F]{8,16})\s*", report[i + 1])
            if match:
                pc = int(match.group(1), 16)
        for match in _IP_LINE.finditer(raw):
            number = match.group("bracketed") or match.group("hex")
            if number:
                pc = int(number, 16)
    return pc


def _registers_of(report: list[str]) -> dict[str, int]:
    registers: dict[str, int] = {}
    for raw in report:
        if "Code:" in raw:
            continue
        for name, value in _REGISTER.findall(raw):
            registers.setdefault(name.upper(), int(value, 16))
    return registers


def _words_to_bytes(words: list[str], width: int) -> bytes:
    return b"".join(int(w, 16).to_bytes(width, "little") for w in words)


def _objdump_lines(data: bytes, vma: int, mode: int, syntax: str) -> list[str]:
    """``objdump -S`` of a relocatable object whose ``.text`` is ``data`` at ``vma``, less the
    lines the script's ``grep -v`` drops."""
    digits = 16 if mode == 64 else 8
    vma &= (1 << (4 * digits)) - 1
    section = Section(index=1, name=".text", vma=vma, size=len(data), file_offset=0,
                      has_contents=True, is_code=True, _data=data)
    table = SymbolTable([], relocatable=True, exec_or_dynamic=False, address_digits=digits)
    image = ListingImage(_OBJECT, "elf64-x86-64" if mode == 64 else "elf32-i386", digits,
                         [section], table, mode)
    pieces: list[str] = []
    write_listing(image, decoder_formatter(mode, syntax), ListingOptions(), pieces.append)
    return [ln for ln in "".join(pieces).split("\n") if ln and not _DROPPED.search(ln)]


def _opcode_bytes_matched(op_bytes: list[str], opline: str) -> int:
    """How many leading words of ``op_bytes`` occur, blank-separated, in ``opline``
    (the script's ``get_substr_opcode_bytes_num``, whose ``echo`` collapses blanks)."""
    line = _collapse(opline)
    substr, count = "", 0
    for word in op_bytes:
        substr += word
        if substr not in line:
            break
        substr += " "
        count += 1
    return count


def _fault_line_number(code: str, listing: list[str], pc_sub: int, width: int) -> int:
    """The script's ``get_faultlinenum``: 1-based line of the output (two header lines
    first) that holds the marked word."""
    remaining = re.sub(r"[<>()]", "", _collapse(code))
    bytes_to_ip = pc_sub + width
    number = 3
    for line in listing:
        eaten = _opcode_bytes_matched(remaining.split(), line.strip())
        if not eaten:
            continue
        bytes_to_ip -= eaten * width
        if bytes_to_ip <= 0:
            break
        cut = eaten * width * 2 + eaten
        if len(remaining) >= cut:  # sed 's/^.\{N\}//' leaves a shorter line alone
            remaining = remaining[cut:]
        number += 1
    return number % 256  # a shell function's return status


def _mark(line: str) -> str:
    head, colon, rest = line.partition(":")
    return f"{head}:*{rest}{TRAP_SUFFIX}" if colon else line


def decodecode(oops: OopsCode, syntax: str = "att", exact: bool = False) -> str:
    """The text ``scripts/decodecode`` prints for ``oops`` (with ``PC=`` and, for 32-bit,
    ``AFLAGS=--32``), instruction text by x86vm's objdump-exact formatters.

    Two habits of the script are kept unless ``exact`` is set (for a known ``pc``): it marks
    the line its byte matching finds (which text elsewhere on a line can mislead), and it lists
    the code from the faulting instruction at the *start* address of the code (its
    ``--adjust-vma`` outlives the first listing). ``exact`` marks the line at ``pc`` and lists
    the second part from ``pc``."""
    out = [oops.line]
    words = re.sub(r"[<>()]", "", oops.code).split()
    marker, pc_sub, width = oops.marker, oops.pc_sub, oops.width
    # The script's --adjust-vma=PC-pc_sub stays in OBJDUMPFLAGS for the second listing too.
    vma = oops.pc - pc_sub if marker and pc_sub and oops.pc is not None else 0
    if marker:
        listing = _objdump_lines(_words_to_bytes(words, width), vma, oops.mode, syntax)
        fault = _fault_line_number(oops.code, listing, pc_sub, width)
        if exact and oops.pc is not None:
            at_pc = [i for i, ln in enumerate(listing) if ln.split(":", 1)[0].strip()
                     == f"{oops.pc:x}"]
            fault = at_pc[0] + 3 if at_pc else 0
        block = ["All code", "========", *listing]
        if 1 <= fault <= len(block):
            block[fault - 1] = _mark(block[fault - 1])
        out.extend(block)
        after = oops.code[marker:]
    else:
        after = oops.code
    out.append("")
    after = re.sub(r"[>)]$", "", re.sub(r"[>)] ", " ", re.sub(r" [<(]", " ", after, count=1),
                                        count=1))
    after_words = after.split()
    out.extend(["Code starting with the faulting instruction",
                "==========================================="])
    if exact and oops.pc is not None:
        vma = oops.pc
    out.extend(_objdump_lines(_words_to_bytes(after_words, width), vma, oops.mode, syntax))
    return "\n".join(out) + "\n"
