"""A listing cut into chunks listed by forked processes at once, written in order.

The selected sections' bytes, counted together, are cut into chunks of about equal work
(`balanced_cuts`; padding counts little), large first and smaller to the end
(`chunk_shares`).  Every process walks the whole listing once (``list_walk(owner, write)``,
`listing._write_part`) and prints only the pieces of the chunks it owns: it claims the next
unclaimed chunk from a pipe of tokens whenever its walk passes the end of its own (`Claims`),
so a process that runs faster (or has a CPU to itself) lists more, and the text is the same
as one process would print.  The parent lists the first chunk straight to its output; each
child lists its chunks into an unlinked temporary file (``os.fork``: it shares the parsed
file, copy on write) and tells the parent each one's place in it; the parent writes every
chunk in order as soon as the ones before it are written, its own kept in memory meanwhile.
A child that fails (or a platform without fork) gets the chunks it did not finish listed by
the parent instead.
"""

from __future__ import annotations

import codecs
import errno
import io
import os
import re
import struct
import sys
import tempfile
from collections.abc import Callable, Sequence

Write = Callable[[str], object]
_ENCODING = ("utf-8", "surrogateescape")   # names are raw ELF bytes: round-trip them
_COPY_CHUNK = 1 << 20
_MESSAGE = struct.Struct("<Iqq")    # a child's chunk: its index, where it starts and ends
PADDING_RUN = 256       # a run of one byte at least this long is padding ...
PADDING_COST = 0.15     # ... and costs this much per byte next to code's 1
MAX_CHUNKS = 255        # (a token is one byte)


def chunk_shares(jobs: int, smallest: float = 1 / 64) -> list[float]:
    """The chunks' shares of the work, in order: guided self-scheduling (each chunk a
    ``1 / (2 jobs)`` share of what is left, none below ``smallest``): the first are large
    (each process learns the shapes of its code once, whatever its chunks), the last small
    (whichever process is free takes them: a process that started late or shares its CPU
    holds up the end by one small chunk at most)."""
    shares: list[float] = []
    left = 1.0
    while left > 1e-9:
        share = min(left, max(left / (2 * jobs), smallest))
        if left - share < smallest / 2:     # (no sliver at the end)
            share = left
        shares.append(share)
        left -= share
    return shares


def balanced_cuts(contents: Sequence[tuple], jobs: int | Sequence[float],
                  cheap: bytes) -> list[int]:
    """Where to cut the listing of these sections (size and bytes, or None for zeros, in
    order; and the part of them listed, from offset lo to hi, when it is not all) into
    ``jobs`` parts of about equal work, or into parts with these shares of the work: the
    offsets into their bytes, counted together, 0 first and the total last.  Work is the
    listed bytes, except that runs of one of the ``cheap`` bytes (zeros objdump skips,
    ``int3``/``nop`` padding the listing joins at once) count `PADDING_COST` per byte: a
    kernel's .text is half int3."""
    shares = [1 / jobs] * jobs if isinstance(jobs, int) else list(jobs)
    runs: list[tuple[int, int, float]] = []     # (start, end, cost of a byte), not code's 1
    base = 0
    for size, data, *listed in contents:
        lo, hi = listed if listed else (0, size)
        lo, hi = min(max(lo, 0), size), min(max(hi, lo, 0), size)
        if lo:
            runs.append((base, base + lo, 0.0))
        if hi < size:
            runs.append((base + hi, base + size, 0.0))
        if data is None:
            if 0 in cheap and lo < hi:
                runs.append((base + lo, base + hi, PADDING_COST))
        else:
            for byte in cheap:
                needle = bytes((byte,)) * PADDING_RUN
                other = re.compile(b"[^%s]" % re.escape(bytes((byte,))))
                start = data.find(needle, lo, hi)
                while start >= 0:
                    found = other.search(data, start, hi)
                    end = found.start() if found is not None else hi
                    runs.append((base + start, base + end, PADDING_COST))
                    start = data.find(needle, end, hi)
        base += size
    runs.sort()
    total = base
    cost_total = total - sum((end - start) * (1 - weight) for start, end, weight in runs)
    cuts = [0]
    position = cost = 0.0
    runs.append((total, total, 1.0))
    done = 0.0
    for share in shares[:-1]:
        done += share
        target = cost_total * done
        for start, end, weight in runs:
            if end <= position:
                continue
            start = max(start, position)
            if cost + (start - position) >= target:     # in the code before this run
                position, cost = position + (target - cost), target
                break
            cost += start - position
            position = start
            if weight and cost + (end - start) * weight >= target:     # inside the run
                position = start + (target - cost) / weight
                cost = target
                break
            cost += (end - start) * weight
            position = end
        cuts.append(min(total, max(cuts[-1], int(position))))
    cuts.append(total)
    return cuts


class Owner:
    """Which chunks of the listing this process prints.  The walk asks `owns` for the
    offset of every piece it could print, in order, and calls `finish` at its end; `flush`
    (set by the walk) writes out what it has gathered.  `start(k)` and `done(k)` are told
    when this process begins and ends chunk k (every chunk it owns, even one without
    pieces), its output in between."""

    def __init__(self, cuts: Sequence[int], start: Callable[[int], None],
                 done: Callable[[int], None]) -> None:
        self.cuts = cuts            # chunk k is the offsets cuts[k] .. cuts[k + 1] - 1
        self.count = len(cuts) - 1
        self.start = start
        self.done = done
        self.current = -1           # the chunk being listed (count: none left)
        self.chunk = 0              # the chunk of the offset asked about last

    flush: Callable[[], None] = staticmethod(lambda: None)

    def owns(self, offset: int) -> bool:
        cuts = self.cuts
        c = self.chunk
        while c + 1 < self.count and cuts[c + 1] <= offset:
            c += 1
        self.chunk = c
        if c == self.current:
            return True
        if c < self.current:
            return False
        self._end_current()
        while self.current < c:     # (chunks skipped on the way have no piece of their own)
            self._begin(self.next_chunk(c))
            if self.current < c:
                self._end_current()
        return c == self.current

    def before(self, end: int) -> bool:
        """Whether every offset below ``end`` is past for this process (a section there
        need not be walked)."""
        return 0 <= self.current and end <= self.cuts[min(self.current, self.count)]

    def finish(self) -> None:
        """The walk is over: the current chunk ends, and any this process still gets
        (pieceless ones at the end) are empty."""
        self._end_current()
        while self.current < self.count:
            self._begin(self.next_chunk(self.count))
            self._end_current()

    def next_chunk(self, wanted: int) -> int:
        """The next chunk this process lists (`count` if none), at least the one after
        its current chunk; ``wanted`` is the one the walk has reached."""
        raise NotImplementedError

    def _begin(self, k: int) -> None:
        self.current = k
        if k < self.count:
            self.start(k)

    def _end_current(self) -> None:
        if 0 <= self.current < self.count:
            self.flush()
            self.done(self.current)


class Claims(Owner):
    """The chunks this process claims, one at a time as its walk leaves the last one, from
    the tokens (one byte each: a chunk's index, in order) in the pipe ``tokens``; a chunk
    all processes have passed without claiming has no piece starting in it."""

    def __init__(self, cuts, start, done, tokens: int, first: int | None = None) -> None:
        super().__init__(cuts, start, done)
        self.tokens = tokens
        if first is not None:
            self._begin(first)

    def next_chunk(self, wanted: int) -> int:
        token = os.read(self.tokens, 1)
        return token[0] if token else self.count


class Fixed(Owner):
    """A fixed set of chunks (the ones a failed child did not finish)."""

    def __init__(self, cuts, start, done, chunks: Sequence[int]) -> None:
        super().__init__(cuts, start, done)
        self.chunks = sorted(chunks)

    def next_chunk(self, wanted: int) -> int:
        for k in self.chunks:
            if k > self.current:
                return k
        return self.count


def run_chunks(cuts: Sequence[int], jobs: int, list_walk: Callable[[Owner, Write], None],
               write: Write) -> None:
    """The walk ``list_walk(owner, write)`` (see `Owner`) over chunks ``cuts`` split
    between this process and ``jobs - 1`` forked children; the output in chunk order."""
    count = len(cuts) - 1
    if not 0 < count <= MAX_CHUNKS:
        raise ValueError(f"{count} chunks")
    if not hasattr(os, "fork") or jobs < 2 or count < 2:
        _walk_fixed(cuts, range(count), list_walk, write)
        return
    flush = getattr(getattr(write, "__self__", None), "flush", None)
    if flush is not None:
        flush()                   # nothing buffered may be written twice (parent and child)
    sys.stdout.flush()
    sys.stderr.flush()
    tokens_in, tokens_out = os.pipe()
    os.write(tokens_out, bytes(range(1, count)))    # (chunk 0 is the parent's)
    os.close(tokens_out)
    messages_in, messages_out = os.pipe()
    children: list[tuple[int, object]] = []
    try:
        for index in range(jobs - 1):
            spool = tempfile.TemporaryFile()
            pid = os.fork()
            if pid == 0:          # a child: list the chunks it claims into its spool
                os.close(messages_in)
                os._exit(_child(index, cuts, list_walk, spool, tokens_in, messages_out))
            children.append((pid, spool))
        os.close(messages_out)
        messages_out = -1
        order = _InOrder(write, [spool for _, spool in children], count, messages_in)
        owner = Claims(cuts, order.start, order.done, tokens_in, first=0)
        list_walk(owner, order.write)
        owner.finish()
        order.wait()
        failed = [k for k in range(count) if k not in order.ready and k >= order.next]
        if failed:                # a child stopped: its unfinished chunks listed here
            _walk_fixed(cuts, failed, list_walk, order.keep)
            order.emit()
        for pid, spool in children:
            os.waitpid(pid, 0)
            spool.close()
        children.clear()
    finally:
        for fd in (tokens_in, messages_in, messages_out):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for pid, spool in children:   # (the parent's output failed: stop its children)
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
            spool.close()


def _walk_fixed(cuts: Sequence[int], chunks, list_walk, write) -> None:
    """The walk in this process over a fixed set of chunks; ``write`` also takes
    ``write.start(k)``/``write.done(k)`` when it has them (`_InOrder.keep`)."""
    owner = Fixed(cuts, getattr(write, "start", _nothing), getattr(write, "done", _nothing),
                  chunks)
    list_walk(owner, write)
    owner.finish()


def _nothing(_chunk: int) -> None:
    pass


class _InOrder:
    """The parent's output: its own chunks (written at once when every chunk before them
    is, else kept) and the children's (read from their spools), in chunk order."""

    def __init__(self, write: Write, spools: list, count: int, messages: int) -> None:
        self.out = write
        self.spools = spools
        self.count = count
        self.next = 0               # the first chunk not written yet
        self.ready: dict[int, tuple] = {}   # chunk -> ("text", str) or (child, start, end)
        self.direct = False         # the parent's current chunk is written as it goes
        self.kept: list[str] = []
        self.pending = b""
        self.messages = messages    # the children's messages (-1 once they have left)
        self.keep = _Keep(self)

    def start(self, chunk: int) -> None:
        self.poll()
        self.direct = chunk == self.next
        self.kept = []

    def write(self, text: str) -> None:
        if self.direct:
            self.out(text)
        else:
            self.kept.append(text)

    def done(self, chunk: int) -> None:
        if self.direct:
            self.next = chunk + 1
        else:
            self.ready[chunk] = ("text", "".join(self.kept))
        self.kept = []
        self.direct = False
        self.emit()

    def emit(self) -> None:
        """Every chunk that is next and ready, written."""
        while self.next in self.ready:
            entry = self.ready.pop(self.next)
            if entry[0] == "text":
                if entry[1]:
                    self.out(entry[1])
            else:
                _copy(self.spools[entry[0]], entry[1], entry[2], self.out)
            self.next += 1

    def poll(self, block: bool = False) -> bool:
        """Read the children's messages (waiting for one if ``block``); False at their
        end (every child has left)."""
        if self.messages < 0:
            return False
        os.set_blocking(self.messages, block)
        try:
            data = os.read(self.messages, _MESSAGE.size * 64)
        except BlockingIOError:
            return True
        if not data:
            return False
        data = self.pending + data
        whole = len(data) - len(data) % _MESSAGE.size
        for packed in range(0, whole, _MESSAGE.size):
            word, start, end = _MESSAGE.unpack_from(data, packed)
            self.ready[word & 0xFF] = (word >> 8, start, end)
        self.pending = data[whole:]
        return True

    def wait(self) -> None:
        """Write the chunks in order until all are written or the children have left."""
        self.poll()
        self.emit()
        while self.next < self.count and self.poll(block=True):
            self.emit()
        self.emit()
        self.messages = -1


class _Keep:
    """`_InOrder` for the chunks the parent lists after a child failed: all kept."""

    def __init__(self, order: _InOrder) -> None:
        self.order = order

    def __call__(self, text: str) -> None:
        self.order.kept.append(text)

    def start(self, chunk: int) -> None:
        self.order.kept = []

    def done(self, chunk: int) -> None:
        self.order.ready[chunk] = ("text", "".join(self.order.kept))
        self.order.kept = []


def _child(index: int, cuts: Sequence[int], list_walk: Callable[[Owner, Write], None],
           spool, tokens: int, messages: int) -> int:
    try:
        fd = spool.fileno()
        with open(fd, "w", encoding=_ENCODING[0], errors=_ENCODING[1],
                  buffering=_COPY_CHUNK, closefd=False) as out:
            starts: dict[int, int] = {}

            def start(chunk: int) -> None:
                out.flush()
                starts[chunk] = os.lseek(fd, 0, os.SEEK_CUR)

            def done(chunk: int) -> None:
                out.flush()
                os.write(messages, _MESSAGE.pack(chunk | index << 8, starts.pop(chunk),
                                                 os.lseek(fd, 0, os.SEEK_CUR)))

            owner = Claims(cuts, start, done, tokens)
            list_walk(owner, out.write)
            owner.finish()
        return 0
    except BaseException:         # the parent lists this child's unfinished chunks
        return 1


def _copy(spool, start: int, end: int, write: Write) -> None:
    """A child's spool from ``start`` to ``end`` after what ``write`` wrote: as bytes when
    ``write`` is a UTF-8 text stream's (the CLI's standard output: the spool holds the very
    bytes it would write), else decoded and written as text."""
    stream = getattr(write, "__self__", None)
    if _utf8_stream(stream):
        stream.flush()
        buffer = stream.buffer
        buffer.flush()
        start = _sendfile(spool, start, end, buffer)
        while start < end:
            block = os.pread(spool.fileno(), min(_COPY_CHUNK, end - start), start)
            if not block:
                raise OSError(errno.EIO, "the spool of a listing ended early")
            buffer.write(block)
            start += len(block)
        buffer.flush()
        return
    decoder = codecs.getincrementaldecoder(_ENCODING[0])(_ENCODING[1])
    while start < end:
        block = os.pread(spool.fileno(), min(_COPY_CHUNK, end - start), start)
        if not block:
            raise OSError(errno.EIO, "the spool of a listing ended early")
        start += len(block)
        text = decoder.decode(block, start >= end)
        if text:
            write(text)


def _sendfile(spool, start: int, end: int, buffer) -> int:
    """The spool from ``start`` to ``end`` to ``buffer``'s file by ``os.sendfile`` (no
    copy through Python); returns where it stopped (``end`` when it could do it all)."""
    try:
        out = buffer.fileno()
    except (AttributeError, OSError, ValueError):
        return start
    source = spool.fileno()
    try:
        while start < end:
            sent = os.sendfile(out, source, start, end - start)
            if sent == 0:
                break
            start += sent
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise                   # (EPIPE, ENOSPC: the output's own errors)
    return start


def _utf8_stream(stream) -> bool:
    """A text stream over a byte buffer that encodes as the spool does."""
    if not isinstance(stream, io.TextIOWrapper) or stream.errors != _ENCODING[1] or \
            os.linesep != "\n":
        return False
    try:
        return codecs.lookup(stream.encoding).name == _ENCODING[0]
    except LookupError:
        return False
