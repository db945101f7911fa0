"""Write a minimal relocatable ELF file: one ``.text`` holding byte strings, a symbol at each.

Used to ask objdump about many unrelated byte strings in one run: objdump never lets an
instruction in a code section read past the next symbol, so each string is disassembled on its
own, exactly as if it were the whole input (gABI "Sections", "Symbol Table").
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence

EM_386, EM_X86_64 = 3, 62


def write_snippets_elf(path: str, snippets: Sequence[bytes], bits: int = 64,
                       objects: Collection[int] = ()) -> list[int]:
    """Write ``snippets`` back to back into ``.text`` of a new ELF at ``path`` with a global
    function symbol ``s<N>`` at each one (an object symbol for indexes in ``objects``); return
    their offsets. ``bits`` is the ELF class: 64 (x86-64) or 32 (i386, also used for 16-bit code
    with ``-m i8086``)."""
    text = bytearray()
    offsets = []
    for snippet in snippets:
        offsets.append(len(text))
        text += snippet
    strtab = bytearray(b"\0")
    symbols = []
    for n, offset in enumerate(offsets):
        name_offset = len(strtab)
        strtab += f"s{n}".encode() + b"\0"
        symbols.append((name_offset, offset, len(snippets[n]), 1 if n in objects else 2))
    shstrtab = b"\0.text\0.symtab\0.strtab\0.shstrtab\0"
    global_bind = 1 << 4  # STB_GLOBAL; type STT_OBJECT (1) or STT_FUNC (2)
    if bits == 64:
        ehdr_size, shdr_size, sym_size = 64, 64, 24
        null_sym = bytes(sym_size)
        sym_blob = null_sym + b"".join(
            struct.pack("<IBBHQQ", name, global_bind | kind, 0, 1, value, size)
            for name, value, size, kind in symbols)
    else:
        ehdr_size, shdr_size, sym_size = 52, 40, 16
        null_sym = bytes(sym_size)
        sym_blob = null_sym + b"".join(
            struct.pack("<IIIBBH", name, value, size, global_bind | kind, 0, 1)
            for name, value, size, kind in symbols)

    def align(n: int, a: int = 8) -> int:
        return (n + a - 1) // a * a

    text_off = ehdr_size
    sym_off = align(text_off + len(text))
    str_off = sym_off + len(sym_blob)
    shstr_off = str_off + len(strtab)
    shdr_off = align(shstr_off + len(shstrtab))
    # (name, type, flags, offset, size, link, info, align, entsize)
    headers = [
        (0, 0, 0, 0, 0, 0, 0, 0, 0),
        (1, 1, 0x6, text_off, len(text), 0, 0, 16, 0),
        (7, 2, 0, sym_off, len(sym_blob), 3, 1, 8, sym_size),
        (15, 3, 0, str_off, len(strtab), 0, 0, 1, 0),
        (23, 3, 0, shstr_off, len(shstrtab), 0, 0, 1, 0),
    ]
    if bits == 64:
        ident = b"\x7fELF\x02\x01\x01" + bytes(9)
        ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 1, EM_X86_64, 1, 0, 0, shdr_off, 0,
                                   ehdr_size, 0, 0, shdr_size, len(headers), 4)
        shdrs = b"".join(struct.pack("<IIQQQQIIQQ", name, typ, flags, 0, off, size, link, info,
                                     al, es)
                         for name, typ, flags, off, size, link, info, al, es in headers)
    else:
        ident = b"\x7fELF\x01\x01\x01" + bytes(9)
        ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 1, EM_386, 1, 0, 0, shdr_off, 0,
                                   ehdr_size, 0, 0, shdr_size, len(headers), 4)
        shdrs = b"".join(struct.pack("<IIIIIIIIII", name, typ, flags, 0, off, size, link, info,
                                     al, es)
                         for name, typ, flags, off, size, link, info, al, es in headers)
    blob = bytearray(ehdr)
    blob += text
    blob += bytes(sym_off - len(blob))
    blob += sym_blob + strtab + shstrtab
    blob += bytes(shdr_off - len(blob))
    blob += shdrs
    with open(path, "wb") as out:
        out.write(blob)
    return offsets
