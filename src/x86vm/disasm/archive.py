"""Static archives (``ar``, ``.a``): their members, as objdump lists them one by one.

The format (System V / GNU ``ar``, as in binutils' archive.c and the ``ar`` file format of
the System V ABI): the magic ``!<arch>\\n``, then per member a 60-byte header -- name (16),
date (12), uid (6), gid (6), mode (8), size (10, decimal), ``\\`\\n`` -- and its data, padded
to an even offset.  GNU names end with ``/``; ``/`` and ``/SYM64/`` are symbol tables,
``//`` the table of long names that ``/OFFSET`` names point into (each ending ``/\\n``); BSD
``#1/LEN`` names are the first LEN bytes of the data.  objdump prints ``In archive NAME:``
and then each member's own output under its own name.
"""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = b"!<arch>\n"
THIN_MAGIC = b"!<thin>\n"
HEADER_SIZE = 60


class ArchiveError(ValueError):
    """An archive x86vm cannot read (objdump's wording where it has one)."""


@dataclass
class Member:
    name: str
    data: bytes


def is_archive(head: bytes) -> bool:
    return head.startswith((MAGIC, THIN_MAGIC))


def members(data: bytes) -> list[Member]:
    """The members of an archive (symbol tables and the long-name table left out)."""
    if data.startswith(THIN_MAGIC):
        raise ArchiveError("thin archives are not supported by x86vm disasm")
    if not data.startswith(MAGIC):
        raise ArchiveError("file format not recognized")
    out: list[Member] = []
    long_names = b""
    pos = len(MAGIC)
    while pos + HEADER_SIZE <= len(data):
        header = data[pos:pos + HEADER_SIZE]
        if header[58:60] != b"`\n":
            raise ArchiveError("malformed archive")
        raw_name = header[:16].rstrip(b" ")
        try:
            size = int(header[48:58].strip() or b"0")
        except ValueError:
            raise ArchiveError("malformed archive") from None
        start = pos + HEADER_SIZE
        body = data[start:start + size]
        if len(body) != size:
            raise ArchiveError("malformed archive")
        pos = start + size + (size & 1)
        if raw_name in (b"/", b"/SYM64/", b"__.SYMDEF", b"__.SYMDEF SORTED"):
            continue
        if raw_name == b"//":
            long_names = body
            continue
        if raw_name.startswith(b"#1/"):                 # BSD: the name leads the data
            length = int(raw_name[3:] or b"0")
            name, body = body[:length].rstrip(b"\0"), body[length:]
        elif raw_name.startswith(b"/") and raw_name[1:].isdigit():
            offset = int(raw_name[1:])
            end = long_names.find(b"\n", offset)
            name = long_names[offset:end if end >= 0 else len(long_names)].rstrip(b"/")
        else:
            name = raw_name[:-1] if raw_name.endswith(b"/") else raw_name
        out.append(Member(name.decode("utf-8", "surrogateescape"), body))
    return out
