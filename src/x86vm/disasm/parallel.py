"""A listing cut into parts listed by forked processes at once, written in order.

The parent lists the first part straight to its output while each other part is listed by a
child process (``os.fork``: it shares the parsed file, copy on write) into an unlinked
temporary file; the parent then copies the children's files after its own part, in order.
Each part is the whole listing walk with only its own pieces printed (see
`listing._write_part`), so the text is the same as one process would print.  A child that
fails (or a platform without fork) gets its part listed by the parent instead.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence

Part = tuple[int, int]
Write = Callable[[str], object]
_ENCODING = ("utf-8", "surrogateescape")   # names are raw ELF bytes: round-trip them
_COPY_CHUNK = 1 << 20
PADDING_RUN = 256       # a run of one byte at least this long is padding ...
PADDING_COST = 0.15     # ... and costs this much per byte next to code's 1


def balanced_cuts(contents: Sequence[tuple[int, bytes | None]], jobs: int,
                  cheap: bytes) -> list[int]:
    """Where to cut the listing of these sections (size and bytes, or None for zeros, in
    order) into ``jobs`` parts of about equal work: the offsets into their bytes, counted
    together, 0 first and the total last.  Work is the bytes, except that runs of one of
    the ``cheap`` bytes (zeros objdump skips, ``int3``/``nop`` padding the listing joins
    at once) count `PADDING_COST` per byte: a kernel's .text is half int3."""
    runs: list[tuple[int, int]] = []
    base = 0
    for size, data in contents:
        if data is None:
            if 0 in cheap:
                runs.append((base, base + size))
        else:
            for byte in cheap:
                needle = bytes((byte,)) * PADDING_RUN
                other = re.compile(b"[^%s]" % re.escape(bytes((byte,))))
                start = data.find(needle)
                while start >= 0:
                    found = other.search(data, start)
                    end = found.start() if found is not None else len(data)
                    runs.append((base + start, base + end))
                    start = data.find(needle, end)
        base += size
    runs.sort()
    total = base
    cost_total = total - (1 - PADDING_COST) * sum(end - start for start, end in runs)
    cuts = [0]
    position = cost = 0.0
    runs.append((total, total))
    for k in range(1, jobs):
        target = cost_total * k / jobs
        for start, end in runs:
            if end <= position:
                continue
            start = max(start, position)
            if cost + (start - position) >= target:     # in the code before this run
                position, cost = position + (target - cost), target
                break
            cost += start - position
            position = start
            if cost + (end - start) * PADDING_COST >= target:     # inside the run
                position = start + (target - cost) / PADDING_COST
                cost = target
                break
            cost += (end - start) * PADDING_COST
            position = end
        cuts.append(min(total, max(cuts[-1], int(position))))
    cuts.append(total)
    return cuts


def run_parts(parts: Sequence[Part], list_part: Callable[[Part, Write], None],
              write: Write) -> None:
    """``list_part(part, write)`` for every part, the output in the order of ``parts``."""
    if not hasattr(os, "fork") or len(parts) < 2:
        for part in parts:
            list_part(part, write)
        return
    flush = getattr(getattr(write, "__self__", None), "flush", None)
    if flush is not None:
        flush()                   # nothing buffered may be written twice (parent and child)
    sys.stdout.flush()
    sys.stderr.flush()
    children: list[tuple[int, object]] = []
    try:
        for part in parts[1:]:
            spool = tempfile.TemporaryFile()
            pid = os.fork()
            if pid == 0:          # the child: list its part into the spool, then leave
                os._exit(_child(part, list_part, spool))
            children.append((pid, spool))
        list_part(parts[0], write)
        for (pid, spool), part in zip(children, parts[1:], strict=True):
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) == 0:
                _copy(spool, write)
            else:                 # the child failed: list its part here
                list_part(part, write)
            spool.close()
        children.clear()
    finally:
        for pid, spool in children:   # (the parent's output failed: stop its children)
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
            spool.close()


def _child(part: Part, list_part: Callable[[Part, Write], None], spool) -> int:
    try:
        with open(spool.fileno(), "w", encoding=_ENCODING[0], errors=_ENCODING[1],
                  buffering=_COPY_CHUNK, closefd=False) as out:
            list_part(part, out.write)
        return 0
    except BaseException:         # the parent lists this part again and reports any error
        return 1


def _copy(spool, write: Write) -> None:
    """A child's spool after what ``write`` wrote: as bytes when ``write`` is a UTF-8 text
    stream's (the CLI's standard output: the spool holds the very bytes it would write),
    else decoded and written as text."""
    spool.seek(0)
    stream = getattr(write, "__self__", None)
    if _utf8_stream(stream):
        stream.flush()
        buffer = stream.buffer
        buffer.flush()
        if not _sendfile(spool, buffer):
            shutil.copyfileobj(spool, buffer, _COPY_CHUNK)
            buffer.flush()
        return
    with open(spool.fileno(), encoding=_ENCODING[0], errors=_ENCODING[1], newline="",
              closefd=False) as text:
        while True:
            block = text.read(_COPY_CHUNK)
            if not block:
                return
            write(block)


def _sendfile(spool, buffer) -> bool:
    """The spool from its position to ``buffer``'s file by ``os.sendfile`` (no copy
    through Python); False, with the spool where it stopped, if that cannot be done."""
    try:
        out = buffer.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    source = spool.fileno()
    offset = spool.tell()
    end = os.fstat(source).st_size
    try:
        while offset < end:
            sent = os.sendfile(out, source, offset, end - offset)
            if sent == 0:
                break
            offset += sent
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise                   # (EPIPE, ENOSPC: the output's own errors)
    spool.seek(offset)
    return offset >= end


def _utf8_stream(stream) -> bool:
    """A text stream over a byte buffer that encodes as the spool does."""
    if not isinstance(stream, io.TextIOWrapper) or stream.errors != _ENCODING[1] or \
            os.linesep != "\n":
        return False
    try:
        return codecs.lookup(stream.encoding).name == _ENCODING[0]
    except LookupError:
        return False
