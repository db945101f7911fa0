"""Host side of a serial port: where the guest's bytes go and where its input comes from.

A :class:`Console` is the far end of the UART's serial line. The UART calls :meth:`write`
for every transmitted byte; the board that connects the two calls :meth:`start` once with the
UART's thread-safe ``feed`` callable. A console with input runs a daemon reader thread (the
console's own, never the device's) that hands host bytes to ``feed``.

``open_console(spec)`` builds one from the ``--serial`` syntax of ``x86vm run``:
``stdio``, ``file:PATH`` (created or truncated), ``tcp:HOST:PORT`` (connect to a listening
peer, like QEMU's ``-serial tcp:``), ``tcp:HOST:PORT,server`` (listen and accept one
client), ``none``.

The vCPU never blocks on the host (issue 8, class 3). :meth:`Console.write` runs on the vCPU
thread, so host output goes through an :class:`OutputQueue`: a bounded buffer
(:data:`OUTPUT_BACKLOG` bytes) drained by the console's writer thread. When the host end
does not keep up (a pipe nobody reads, a stopped terminal) the buffer fills and further guest
bytes are *dropped and counted* — as on a serial line with no flow control whose far end is
not listening; a guest that stops and waits for the host would let ``--timeout`` and Ctrl-C
wait too. When the host end fails (a full disk, ``/dev/full``, a closed descriptor) output
stops for the rest of the run. Either way :meth:`Console.problem` gives the one line
``x86vm run`` prints at the end; a reader that went away (EPIPE) is a clean stop, not an
error. :meth:`Console.close` gives the writer :data:`DRAIN_SECONDS` to finish, then leaves.
"""

from __future__ import annotations

import atexit
import errno
import os
import socket
import sys
import termios
import threading
from collections.abc import Callable

Feed = Callable[[bytes], None]

OUTPUT_BACKLOG = 1 << 20
"""Bytes of guest output waiting for the host before further bytes are dropped."""
DRAIN_SECONDS = 2.0
"""How long close() lets the writer thread flush what is queued."""
WRITE_CHUNK = 64 * 1024
PEER_GONE = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN})


class ConsoleError(ValueError):
    """A bad console specification or a host endpoint that cannot be opened."""


class Console:
    """A serial line's host end that drops output and never produces input."""

    def write(self, data: bytes) -> None:
        """Send guest output to the host."""

    def start(self, feed: Feed) -> None:
        """Begin delivering host input by calling ``feed(bytes)`` (from any thread)."""

    def open_output(self) -> None:
        """Create the host output (a ``file:`` console truncates its file now): called as
        the run starts. Raises :class:`ConsoleError`."""

    def close(self) -> None:
        """Release host resources; reader threads stop."""

    def problem(self) -> str | None:
        """After close(): one line saying what went wrong with the output, or None."""
        return None


class BufferConsole(Console):
    """Collects output in memory; tests push input with :meth:`send`."""

    def __init__(self) -> None:
        self.output = bytearray()
        self._feed: Feed | None = None

    def write(self, data: bytes) -> None:
        self.output += data

    def start(self, feed: Feed) -> None:
        self._feed = feed

    def send(self, data: bytes) -> None:
        if self._feed is None:
            raise RuntimeError("console not attached to a UART")
        self._feed(data)


class OutputQueue:
    """A bounded byte queue drained into ``fd`` by a daemon writer thread.

    :meth:`put` never blocks (only on the short internal lock): bytes that do not fit in
    ``limit`` are dropped and counted; after a write error everything is dropped.
    """

    def __init__(self, fd: int, name: str, limit: int = OUTPUT_BACKLOG) -> None:
        self._fd = fd
        self._name = name
        self._limit = limit
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._closing = False
        self.dropped = 0
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._drain, name=f"console-{name}",
                                        daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        with self._cond:
            room = self._limit - len(self._buf)
            if self.error is not None or self._closing or room <= 0:
                self.dropped += len(data)
                return
            if len(data) > room:
                self.dropped += len(data) - room
                data = data[:room]
            self._buf += data
            self._cond.notify()

    def _drain(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._buf and not self._closing:
                    cond.wait()
                if not self._buf:
                    return
                chunk = bytes(self._buf[:WRITE_CHUNK])
            try:
                written = os.write(self._fd, chunk)
            except OSError as exc:
                with cond:
                    self.error = exc
                    self.dropped += len(self._buf)
                    self._buf.clear()
                    cond.notify_all()
                return
            with cond:
                del self._buf[:written]
                if not self._buf:
                    cond.notify_all()

    def close(self, timeout: float = DRAIN_SECONDS) -> None:
        """Stop taking bytes; wait up to ``timeout`` for the queue to drain (what is left
        after that is dropped: the writer may be stuck on a host end nobody reads)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._buf, timeout)
            if self._buf:
                self.dropped += len(self._buf)
                self._buf.clear()
                self._cond.notify_all()
        self._thread.join(0.1)

    def problem(self) -> str | None:
        exc = self.error
        if exc is not None and exc.errno not in PEER_GONE:  # a reader that left: clean stop
            return f"serial output to {self._name} stopped: {exc.strerror or exc}"
        if self.dropped and exc is None:
            return (f"serial output to {self._name}: {self.dropped} bytes dropped (the host "
                    "end did not keep up)")
        return None


def _reader(read: Callable[[], bytes], feed: Feed, stop: threading.Event) -> None:
    """Reader-thread body: forward host chunks until EOF, an error, or close()."""
    while not stop.is_set():
        try:
            chunk = read()
        except OSError:
            return
        if not chunk or stop.is_set():
            return
        feed(chunk)


class StreamConsole(Console):
    """Output to a file descriptor (stdout or a file) through an :class:`OutputQueue`;
    optional input from a file descriptor. ``out_fd`` None: output is dropped (a closed
    stdout). A file ``path`` is opened (created or truncated) only when :meth:`open_output`
    is called, so a run that fails before the guest starts leaves it untouched."""

    def __init__(self, out_fd: int | None, in_fd: int | None = None, *,
                 path: str | None = None, name: str = "stdout") -> None:
        self._out_fd = out_fd
        self._path = path
        self._name = name
        self._in_fd = in_fd
        self._queue: OutputQueue | None = None
        self._stop = threading.Event()
        self._restore: tuple[int, list] | None = None
        if out_fd is not None:
            self._queue = OutputQueue(out_fd, name)

    def open_output(self) -> None:
        """Open (create or truncate) the output file, if this console has one."""
        if self._path is None or self._out_fd is not None:
            return
        try:
            # O_NONBLOCK: a FIFO nobody reads fails (ENXIO) instead of blocking the start
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK
                         | getattr(os, "O_CLOEXEC", 0), 0o666)
            os.set_blocking(fd, True)
            self._out_fd = fd
        except OSError as e:
            raise ConsoleError(f"serial file:{self._path}: {e.strerror}") from None
        self._queue = OutputQueue(self._out_fd, self._name)

    def write(self, data: bytes) -> None:
        queue = self._queue
        if queue is not None:
            queue.put(data)

    def start(self, feed: Feed) -> None:
        if self._in_fd is None:
            return
        fd = self._in_fd
        self._terminal_char_mode(fd)
        threading.Thread(target=_reader, args=(lambda: os.read(fd, 4096), feed, self._stop),
                         name="console-stdin", daemon=True).start()

    def _terminal_char_mode(self, fd: int) -> None:
        """On a terminal, pass keys through as typed: no line editing and no local echo (the
        guest echoes), but keep signals so Ctrl-C still stops x86vm. Undone by close()."""
        if not os.isatty(fd):
            return
        try:
            saved = termios.tcgetattr(fd)
        except termios.error:
            return
        mode = list(saved)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflags
        mode[6] = list(mode[6])
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        self._restore = (fd, saved)
        atexit.register(self._restore_terminal)

    def _restore_terminal(self) -> None:
        restore, self._restore = self._restore, None
        if restore is not None:
            try:
                termios.tcsetattr(restore[0], termios.TCSADRAIN, restore[1])
            except termios.error:
                pass

    def close(self) -> None:
        self._stop.set()
        self._restore_terminal()
        if self._queue is not None:
            self._queue.close()
        if self._path is not None and self._out_fd is not None:
            try:
                os.close(self._out_fd)
            except OSError:
                pass
            self._out_fd = None

    def problem(self) -> str | None:
        return self._queue.problem() if self._queue is not None else None


class SocketConsole(Console):
    """A TCP byte stream: guest output is sent, bytes received are fed to the UART.

    With ``server=True`` it listens and accepts one client in the reader thread; output
    before a client connects is dropped (a serial line with nobody on the other end). Output
    goes through an :class:`OutputQueue`: a peer that stops reading never blocks the vCPU.
    """

    def __init__(self, host: str, port: int, *, server: bool = False, timeout: float = 10.0):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._queue: OutputQueue | None = None
        self._name = f"tcp:{host}:{port}"
        try:
            if server:
                self._listener = socket.create_server((host, port))
            else:
                sock = socket.create_connection((host, port), timeout=timeout)
                sock.settimeout(None)
                self._connected(sock)
        except OSError as e:
            raise ConsoleError(f"serial tcp:{host}:{port}: {e.strerror or e}") from None

    @property
    def address(self) -> tuple[str, int]:
        """The listening address (server mode) or the peer's address."""
        s = self._listener or self._sock
        assert s is not None
        return s.getsockname()[:2] if self._listener else s.getpeername()[:2]

    def write(self, data: bytes) -> None:
        queue = self._queue
        if queue is not None:
            queue.put(data)

    def _connected(self, sock: socket.socket) -> None:
        self._sock = sock
        self._queue = OutputQueue(sock.fileno(), self._name)

    def problem(self) -> str | None:
        queue = self._queue
        if queue is None or (queue.error is not None and queue.error.errno in PEER_GONE):
            return None  # a client that disconnects is a clean stop
        return queue.problem()

    def start(self, feed: Feed) -> None:
        threading.Thread(target=self._run, args=(feed,), name="console-tcp",
                         daemon=True).start()

    def _run(self, feed: Feed) -> None:
        if self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self._connected(conn)
        sock = self._sock
        if sock is not None:
            _reader(lambda: sock.recv(4096), feed, self._stop)

    def close(self) -> None:
        self._stop.set()
        if self._queue is not None:
            self._queue.close()
        with self._lock:
            for s in (self._sock, self._listener):
                if s is not None:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
            self._sock = self._listener = None


def _open_fd(stream) -> int | None:
    """The descriptor behind ``sys.stdin``/``sys.stdout``; None when it is closed
    (``>&-``: Python then sets the stream to None)."""
    if stream is None or stream.closed:
        return None
    try:
        fd = stream.fileno()
        os.fstat(fd)
    except (OSError, ValueError):
        return None
    return fd


def _check_output_path(path: str) -> None:
    """Refuse now what opening ``path`` for writing would refuse later, without creating or
    truncating anything (that waits for the run: an image that fails to load loses nothing)."""
    problem = None
    if os.path.isdir(path):
        problem = "Is a directory"
    elif os.path.lexists(path):
        if not os.access(path, os.W_OK):
            problem = "Permission denied"
    else:
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            problem = "No such file or directory"
        elif not os.access(parent, os.W_OK | os.X_OK):
            problem = "Permission denied"
    if problem is not None:
        raise ConsoleError(f"serial file:{path}: {problem}")


def open_console(spec: str, *, read_stdin: bool = True) -> Console:
    """Build a console from ``stdio | file:PATH | tcp:HOST:PORT[,server] | none``. Nothing
    is created on the host yet: call ``open_output()`` (when the console has it) as the
    run starts. ``read_stdin`` False: ``stdio`` only writes (the input comes from elsewhere,
    e.g. ``--serial-input``)."""
    kind, _, arg = spec.partition(":")
    if spec == "none":
        return Console()
    if spec == "stdio":
        return StreamConsole(_open_fd(sys.stdout), _open_fd(sys.stdin) if read_stdin else None)
    if kind == "file" and arg:
        _check_output_path(arg)
        return StreamConsole(None, path=arg, name=arg)
    if kind == "tcp" and arg:
        addr, _, opts = arg.partition(",")
        host, _, port = addr.rpartition(":")
        if opts not in ("", "server") or not host or not port.isdigit() or int(port) > 65535:
            raise ConsoleError(f"serial {spec!r}: expected tcp:HOST:PORT or tcp:HOST:PORT,server")
        return SocketConsole(host, int(port), server=opts == "server")
    raise ConsoleError(f"serial {spec!r}: expected stdio, file:PATH, tcp:HOST:PORT[,server] "
                       "or none")
