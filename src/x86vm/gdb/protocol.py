"""GDB Remote Serial Protocol framing (gdb manual, "Remote Protocol" > "Overview").

A packet is ``$`` *data* ``#`` *two hex digits*, the checksum being the sum of the data bytes
modulo 256. The receiver answers ``+`` (or ``-`` to ask for a resend) until both sides agree
on ``QStartNoAckMode``. In binary data (``X`` packets, ``qXfer`` replies) the bytes ``#``,
``$``, ``}`` and ``*`` are escaped as ``}`` followed by the byte XOR 0x20. A lone 0x03 byte
outside any packet is an interrupt request (Ctrl-C). A reader that gets a malformed packet
answers ``-`` and drops it; it never raises on what the peer sends.
"""

from __future__ import annotations

from collections.abc import Iterator

INTERRUPT = 0x03
MAX_PACKET = 0x4000
_ESCAPED = frozenset(b"#$}*")


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(data: bytes) -> bytes:
    """``$data#cs`` for ``data`` (already escaped where binary)."""
    return b"$" + data + b"#" + f"{checksum(data):02x}".encode()


def escape(data: bytes) -> bytes:
    out = bytearray()
    for byte in data:
        if byte in _ESCAPED:
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for byte in it:
        if byte == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                break
            out.append(nxt ^ 0x20)
        else:
            out.append(byte)
    return bytes(out)


class PacketReader:
    """Split a byte stream into events: ``("packet", data)``, ``("bad", b"")`` for a packet
    whose checksum is wrong, ``("interrupt", b"")``, ``("ack", b"+")``/``("ack", b"-")``."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> Iterator[tuple[str, bytes]]:
        buf = self._buffer
        buf += chunk
        while buf:
            first = buf[0]
            if first == INTERRUPT:
                del buf[0]
                yield "interrupt", b""
            elif first in b"+-":
                del buf[0]
                yield "ack", bytes((first,))
            elif first == ord("$"):
                end = buf.find(b"#")
                if end < 0:
                    if len(buf) > 2 * MAX_PACKET:  # a peer that never ends its packet
                        buf.clear()
                        yield "bad", b""
                    return
                if len(buf) < end + 3:
                    return
                data, digits = bytes(buf[1:end]), bytes(buf[end + 1:end + 3])
                del buf[:end + 3]
                try:
                    ok = int(digits, 16) == checksum(data)
                except ValueError:
                    ok = False
                yield ("packet", data) if ok else ("bad", b"")
            else:
                del buf[0]  # noise between packets
