"""Host side of a serial port: where the guest's bytes go and where its input comes from.

A :class:`Console` is the far end of the UART's serial line. The UART calls :meth:`write`
for every transmitted byte; the board that connects the two calls :meth:`start` once with the
UART's thread-safe ``feed`` callable. A console with input runs a daemon reader thread (the
console's own, never the device's) that hands host bytes to ``feed``.

``open_console(spec)`` builds one from the ``--serial`` syntax of ``x86vm run``:
``stdio``, ``file:PATH``, ``tcp:HOST:PORT`` (connect to a listening peer, like QEMU's
``-serial tcp:``), ``tcp:HOST:PORT,server`` (listen and accept one client), ``none``.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import termios
import threading
from collections.abc import Callable
from typing import BinaryIO

Feed = Callable[[bytes], None]


class ConsoleError(ValueError):
    """A bad console specification or a host endpoint that cannot be opened."""


class Console:
    """A serial line's host end that drops output and never produces input."""

    def write(self, data: bytes) -> None:
        """Send guest output to the host."""

    def start(self, feed: Feed) -> None:
        """Begin delivering host input by calling ``feed(bytes)`` (from any thread)."""

    def close(self) -> None:
        """Release host resources; reader threads stop."""


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
    """Output to a binary stream (stdout or a file); optional input from a file descriptor."""

    def __init__(self, out: BinaryIO, in_fd: int | None = None, *, owns_out: bool = False):
        self._out = out
        self._in_fd = in_fd
        self._owns_out = owns_out
        self._stop = threading.Event()
        self._restore: tuple[int, list] | None = None

    def write(self, data: bytes) -> None:
        try:
            self._out.write(data)
            self._out.flush()
        except (OSError, ValueError):  # closed pipe / closed file: the line is cut, not a crash
            pass

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
        if self._owns_out:
            self._out.close()


class SocketConsole(Console):
    """A TCP byte stream: guest output is sent, bytes received are fed to the UART.

    With ``server=True`` it listens and accepts one client in the reader thread; output
    before a client connects is dropped (a serial line with nobody on the other end).
    """

    def __init__(self, host: str, port: int, *, server: bool = False, timeout: float = 10.0):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._listener: socket.socket | None = None
        try:
            if server:
                self._listener = socket.create_server((host, port))
            else:
                self._sock = socket.create_connection((host, port), timeout=timeout)
                self._sock.settimeout(None)
        except OSError as e:
            raise ConsoleError(f"serial tcp:{host}:{port}: {e.strerror or e}") from None

    @property
    def address(self) -> tuple[str, int]:
        """The listening address (server mode) or the peer's address."""
        s = self._listener or self._sock
        assert s is not None
        return s.getsockname()[:2] if self._listener else s.getpeername()[:2]

    def write(self, data: bytes) -> None:
        with self._lock:
            sock = self._sock
        if sock is None:
            return
        try:
            sock.sendall(data)
        except OSError:
            with self._lock:
                self._sock = None

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
                self._sock = conn
        sock = self._sock
        if sock is not None:
            _reader(lambda: sock.recv(4096), feed, self._stop)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for s in (self._sock, self._listener):
                if s is not None:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
            self._sock = self._listener = None


def open_console(spec: str) -> Console:
    """Build a console from ``stdio | file:PATH | tcp:HOST:PORT[,server] | none``."""
    kind, _, arg = spec.partition(":")
    if spec == "none":
        return Console()
    if spec == "stdio":
        stdin_fd = sys.stdin.fileno() if sys.stdin is not None and not sys.stdin.closed else None
        return StreamConsole(sys.stdout.buffer, stdin_fd)
    if kind == "file" and arg:
        try:
            return StreamConsole(open(arg, "wb"), owns_out=True)
        except OSError as e:
            raise ConsoleError(f"serial file:{arg}: {e.strerror}") from None
    if kind == "tcp" and arg:
        addr, _, opts = arg.partition(",")
        host, _, port = addr.rpartition(":")
        if opts not in ("", "server") or not host or not port.isdigit() or int(port) > 65535:
            raise ConsoleError(f"serial {spec!r}: expected tcp:HOST:PORT or tcp:HOST:PORT,server")
        return SocketConsole(host, int(port), server=opts == "server")
    raise ConsoleError(f"serial {spec!r}: expected stdio, file:PATH, tcp:HOST:PORT[,server] "
                       "or none")
