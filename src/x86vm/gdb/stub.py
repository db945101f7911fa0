"""The gdb remote stub: ``x86vm run --gdb tcp::PORT [--wait-gdb]``.

The stub talks the GDB Remote Serial Protocol (gdb manual, "Remote Protocol") to one gdb over
TCP, and to the machine only through the Backend's debugger methods (``get_state``/
``set_state``/``set_debug``), the guest's memory (read and written by virtual address through
its page tables, :mod:`x86vm.trace.paging`) and a stop request. A ``DebugStop`` (breakpoint,
watchpoint, single step) reaches it as the machine's debug handler (``Machine.on_debug_stop``):
the run is paused on the vCPU thread while gdb is in charge. A Ctrl-C from gdb or a new
connection interrupts the backend; a wrapper swapped in for the backend's ``run`` (as the
tracer's) pauses there. A reader thread owns the socket: it acknowledges packets, queues them
for the paused vCPU and turns a 0x03 byte into an interrupt of the running guest.

Breakpoints: ``Z1`` and ``Z2``-``Z4`` take the four debug-register slots. ``Z0`` on a backend
that stops at any number of addresses without touching memory (emu:
``DebugControl.unpatched_breakpoints``) is one of those, at an address that need not even be
mapped yet; elsewhere it writes an ``int3`` into guest memory (through the page tables) and
restores the byte on ``z0``, with ``DebugControl.software_breakpoints`` so that the ``int3``
stops the run; an ``int3`` of the guest's own is delivered to it as #BP. Where the host's KVM
does not deliver data breakpoints (probed: :mod:`x86vm.gdb.kvmdebug`), write watchpoints are
kept by single-stepping; emu's CPU has data breakpoints of its own (cpu/debug.py).
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import sys
import threading
from collections.abc import Callable
from types import SimpleNamespace

from x86vm.cpu.state import PendingEvent, RegisterState
from x86vm.disasm.listing import decoder_formatter
from x86vm.gdb import protocol
from x86vm.gdb.kvmdebug import data_breakpoints_delivered
from x86vm.gdb.registers import (
    apply_g_packet,
    arch_for,
    decode,
    encode,
    g_packet,
    layout,
    read_register,
    target_xml,
    write_register,
)
from x86vm.machine.backend import DebugControl
from x86vm.machine.exits import DebugStop
from x86vm.machine.memory import GuestMemory, GuestMemoryError
from x86vm.trace.oops import code_bits, crash_report, memory_reader
from x86vm.trace.paging import TranslationError, read_linear, write_linear

log = logging.getLogger(__name__)

SIGINT, SIGTRAP, SIGKILL = 2, 5, 9
INT3 = 0xCC
BP_VECTOR = 3
DR6_BS = 1 << 14
MAX_MEMORY_READ = 0x1000
WATCH_KINDS = {"2": "w", "3": "rw", "4": "rw"}  # x86 has no read-only watchpoint
WATCH_REPLY = {"2": "watch", "3": "rwatch", "4": "awatch"}


class GdbStub:
    """One gdb connection to one vCPU; see the module docstring."""

    def __init__(self, backend: object, memory: GuestMemory,
                 request_stop: Callable[[int, str], None], port: int,
                 host: str = "127.0.0.1", wait: bool = False) -> None:
        self.backend, self.memory, self.request_stop = backend, memory, request_stop
        self.target = backend
        self.data_breakpoints = (data_breakpoints_delivered()
                                 if getattr(backend, "name", "") == "kvm" else True)
        self.killed = False
        self.wait = wait
        self.listener = socket.create_server((host, port))
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.packets: queue.Queue[bytes | None] = queue.Queue()
        self.ack = True
        self.pause = threading.Event()
        self.pause_reason = SIGINT
        self.closing = False
        self.state: RegisterState | None = None
        self.regs = layout("amd64")
        self.arch = "amd64"
        self.hw_breakpoints: list[int] = []
        self.watchpoints: list[tuple[int, int, str, str]] = []  # address, len, kind, Z type
        self.sw_breakpoints: dict[int, int | None] = {}  # address -> patched-over byte
        self.unpatched = bool(getattr(backend, "unpatched_breakpoints", False))
        self.single_step = False
        self.stepped_watches: dict[tuple[int, int], bytes | None] = {}  # (address, len): value
        self.tracer = None  # a Tracer, for "monitor trace on|off"
        self.inner = SimpleNamespace(run=None)  # what the wrapper runs (a tracer may wrap it)
        self.fresh = False  # connected, gdb has not seen a stop yet
        self._run = None
        if not wait:
            threading.Thread(target=self._accept, daemon=True, name="gdb-accept").start()

    # -- wiring -------------------------------------------------------------------------------

    def attach(self) -> None:
        """Swap the pausing wrapper in for ``backend.run`` (before the run starts)."""
        self._run = self.inner.run = self.backend.run  # type: ignore[attr-defined]
        inner, pause = self.inner, self.pause
        vcpu = getattr(self.backend, "vcpu", None)
        clear_interrupt = getattr(vcpu, "set_immediate_exit", None)

        def run_with_gdb():
            if self.wait:  # --wait-gdb: the first run waits for gdb, once
                self.wait = False
                self._accept()
            if pause.is_set():
                pause.clear()
                if self.conn is not None:
                    self._pause_here(None if self.fresh else f"S{self.pause_reason:02x}")
                if clear_interrupt is not None:  # the next run must not see the interrupt
                    clear_interrupt(False)       # that made this pause
                return None  # the loop checks its stop request (a kill, a timeout) first
            return inner.run()

        self.backend.run = run_with_gdb  # type: ignore[attr-defined]

    def on_debug_stop(self, ex: DebugStop) -> str:
        """The machine's debug handler: a breakpoint, watchpoint or step stops here."""
        if self.conn is None:
            return "continue"
        if ex.dr6 == 0 and ex.pc not in self.sw_breakpoints and not self.single_step:
            self._deliver_int3(ex.pc)  # the guest's own int3, met while ours are armed
            return "continue"
        reply = self._stop_reply(ex)
        if reply is None:  # a step of our own, to watch memory: go on
            return "continue"
        self._pause_here(reply)
        return "stop" if self.killed else "continue"

    def _deliver_int3(self, pc: int) -> None:
        """What the CPU does at an ``int3``: #BP, a trap, the saved RIP after the ``CC``."""
        from dataclasses import replace

        state = self.target.get_state()  # type: ignore[attr-defined]
        self.target.set_state(replace(state, rip=pc + 1,  # type: ignore[attr-defined]
                                      pending=PendingEvent(BP_VECTOR, "exception")))

    def finish(self, status: int) -> None:
        """The run is over: tell gdb the guest exited with ``status``, then close."""
        if self._run is not None:
            self.backend.run = self._run  # type: ignore[attr-defined]
        if self.conn is not None:
            self._send(f"W{status & 0xFF:02x}")
        self.close()

    def close(self) -> None:
        self.closing = True
        for sock in (self.conn, self.listener):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    # -- the connection -----------------------------------------------------------------------

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn, self.fresh = conn, True
        threading.Thread(target=self._reader, args=(conn,), daemon=True,
                         name="gdb-reader").start()
        self._interrupt(SIGINT)

    def _reader(self, conn: socket.socket) -> None:
        reader = protocol.PacketReader()
        while True:
            try:
                chunk = conn.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                self.packets.put(None)
                return
            for kind, data in reader.feed(chunk):
                if kind == "packet":
                    if self.ack:
                        self._raw(b"+")
                    self.packets.put(data)
                elif kind == "bad":
                    self._raw(b"-")
                elif kind == "interrupt":
                    self._interrupt(SIGINT)

    def _interrupt(self, signal: int) -> None:
        self.pause_reason = signal
        self.pause.set()
        self.backend.interrupt()  # type: ignore[attr-defined]

    def _raw(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            try:
                conn.sendall(data)
            except OSError:
                pass

    def _send(self, payload: str | bytes) -> None:
        data = payload.encode("latin-1") if isinstance(payload, str) else payload
        self._raw(protocol.frame(data))

    # -- a pause --------------------------------------------------------------------------------

    def _stop_reply(self, ex: DebugStop) -> str | None:
        """What to tell gdb about a debug exit; None for a step gdb did not ask for."""
        for (address, length), old in self.stepped_watches.items():
            new = self._peek(address, length)
            if new != old:
                self.stepped_watches[(address, length)] = new
                return f"T{SIGTRAP:02x}watch:{address:x};"
        for slot, (address, _, _, ztype) in enumerate(self.watchpoints,
                                                      start=len(self.hw_breakpoints)):
            if ex.dr6 & (1 << slot):
                return f"T{SIGTRAP:02x}{WATCH_REPLY[ztype]}:{address:x};"
        if ex.dr6 & 0xF and ex.pc in self.hw_breakpoints:
            return f"T{SIGTRAP:02x}hwbreak:;"
        if ex.dr6 == 0 and ex.pc in self.sw_breakpoints:
            return f"T{SIGTRAP:02x}swbreak:;"
        if self.stepped_watches and not self.single_step:
            return None
        return f"S{SIGTRAP:02x}"

    def _peek(self, address: int, length: int) -> bytes | None:
        try:
            state = self.target.get_state()  # type: ignore[attr-defined]
            return read_linear(self.memory, state, address, length)
        except (TranslationError, GuestMemoryError):
            return None

    def _pause_here(self, reply: str | None) -> None:
        """gdb is in charge until it resumes the guest, kills it or goes away."""
        self.state = self.target.get_state()  # type: ignore[attr-defined]
        if self.fresh:  # the description follows the mode the guest is in at connection
            self.fresh = False
            self.arch = arch_for(self.state)
            self.regs = layout(self.arch)
        self.single_step = False
        if reply is not None:
            self._send(reply)
        while True:
            data = self.packets.get()
            if data is None:  # gdb went away: let the guest run on, undisturbed
                self._detach()
                self.conn = None
                return
            try:
                answer, resume = self._handle(data.decode("latin-1"), data)
            except Exception as exc:  # noqa: BLE001 - a bad packet never stops the monitor
                log.debug("gdb packet %r failed", data, exc_info=True)
                answer, resume = f"E{1:02x}" if not isinstance(exc, ValueError) else "E16", False
            if answer is not None:
                self._send(answer)
            if resume:
                return

    def _apply_debug(self) -> None:
        control = DebugControl(single_step=self.single_step or bool(self.stepped_watches),
                               breakpoints=tuple(self.hw_breakpoints),
                               watchpoints=tuple((a, n, k) for a, n, k, _ in self.watchpoints),
                               software_breakpoints=any(
                                   byte is not None for byte in self.sw_breakpoints.values()),
                               unpatched_breakpoints=tuple(
                                   a for a, byte in self.sw_breakpoints.items() if byte is None))
        self.target.set_debug(control)  # type: ignore[attr-defined]

    def _detach(self) -> None:
        for address in list(self.sw_breakpoints):
            self._remove_sw_breakpoint(address)
        self.hw_breakpoints.clear()
        self.watchpoints.clear()
        self.stepped_watches.clear()
        self.single_step = False
        self._apply_debug()

    # -- packets ----------------------------------------------------------------------------

    def _handle(self, text: str, raw: bytes) -> tuple[str | bytes | None, bool]:
        """The reply to one packet and whether the guest resumes."""
        state = self.state
        assert state is not None
        head = text[:1]
        if text == "?":
            return f"S{SIGTRAP:02x}", False
        if text.startswith("qSupported"):
            return ("PacketSize=4000;qXfer:features:read+;QStartNoAckMode+;swbreak+;"
                    "hwbreak+;vContSupported+"), False
        if text == "QStartNoAckMode":
            self.ack = False
            return "OK", False
        if text.startswith("qXfer:features:read:target.xml:"):
            offset, length = (int(x, 16) for x in text.rsplit(":", 1)[1].split(","))
            xml = target_xml(self.arch).encode()
            piece = xml[offset:offset + length]
            return (b"l" if offset + length >= len(xml) else b"m") + protocol.escape(piece), False
        if text == "qAttached":
            return "1", False
        if text == "qC":
            return "QC1", False
        if text == "qfThreadInfo":
            return "m1", False
        if text == "qsThreadInfo":
            return "l", False
        if head == "H" or head == "T":
            return "OK", False
        if text.startswith("qRcmd,"):
            return self._monitor(bytes.fromhex(text[6:]).decode("latin-1")), False
        if text == "g":
            return g_packet(state, self.regs), False
        if head == "G":
            self._set_state(apply_g_packet(state, self.regs, text[1:]))
            return "OK", False
        if head == "p":
            reg = self.regs[int(text[1:], 16)]
            return encode(read_register(state, reg), reg.bits), False
        if head == "P":
            number, value = text[1:].split("=", 1)
            reg = self.regs[int(number, 16)]
            decoded = decode(value)
            if decoded is not None and read_register(state, reg) is not None:
                self._set_state(write_register(state, reg, decoded))
            return "OK", False
        if head == "m":
            address, length = (int(x, 16) for x in text[1:].split(","))
            return self._read_memory(address, min(length, MAX_MEMORY_READ)), False
        if head == "M":
            where, data = text[1:].split(":", 1)
            address = int(where.split(",")[0], 16)
            return self._write_memory(address, bytes.fromhex(data)), False
        if head == "X":
            colon = raw.index(b":")
            address = int(text[1:colon].split(",")[0], 16)
            return self._write_memory(address, protocol.unescape(raw[colon + 1:])), False
        if head in "Zz" and len(text) > 1:
            return self._breakpoint(text), False
        if text == "vCont?":
            return "vCont;c;C;s;S", False
        if text.startswith("vCont;"):
            action = text[6:].split(";")[0].split(":")[0]
            return self._resume(step=action[:1] in "sS")
        if head in "cs":
            if len(text) > 1:
                self._set_state(self._with_rip(int(text[1:].split(";")[0], 16)))
            return self._resume(step=head == "s")
        if head in "CS":  # continue/step with a signal: the signal is not delivered
            return self._resume(step=head == "S")
        if text == "k" or text.startswith("vKill"):
            self._detach()
            if text.startswith("vKill"):
                self._send("OK")
            self.request_stop(128 + SIGKILL, "killed by gdb")
            self.killed = True
            conn, self.conn = self.conn, None
            if conn is not None:
                conn.close()
            return None, True
        if head == "D":
            self._detach()
            self._send("OK")
            conn, self.conn = self.conn, None
            if conn is not None:
                conn.close()
            return None, True
        return "", False  # unsupported: the empty reply

    def _with_rip(self, rip: int) -> RegisterState:
        from dataclasses import replace

        assert self.state is not None
        return replace(self.state, rip=rip)

    def _set_state(self, state: RegisterState) -> None:
        self.target.set_state(state)  # type: ignore[attr-defined]
        self.state = state

    def _resume(self, step: bool) -> tuple[None, bool]:
        self.single_step = step
        self._apply_debug()
        return None, True

    # -- memory and breakpoints ---------------------------------------------------------------

    def _read_memory(self, address: int, length: int) -> str:
        assert self.state is not None
        try:
            data = read_linear(self.memory, self.state, address, length)
        except TranslationError as exc:
            data = getattr(exc, "partial", b"")
            if not data:
                return "E14"  # EFAULT
        for bp, original in self.sw_breakpoints.items():  # show the guest's own bytes
            if original is not None and address <= bp < address + len(data):
                data = data[:bp - address] + bytes((original,)) + data[bp - address + 1:]
        return data.hex()

    def _write_memory(self, address: int, data: bytes) -> str:
        assert self.state is not None
        try:
            write_linear(self.memory, self.state, address, data)
        except (TranslationError, GuestMemoryError):
            return "E14"
        return "OK"

    def _breakpoint(self, text: str) -> str:
        insert = text[0] == "Z"
        ztype, address, kind = text[1:].split(",")[:3]
        address, length = int(address, 16), int(kind.split(";")[0], 16)
        if ztype == "0":
            if insert:
                return self._insert_sw_breakpoint(address)
            self._remove_sw_breakpoint(address)
        elif ztype == "1":
            if insert and address not in self.hw_breakpoints:
                self.hw_breakpoints.append(address)
            elif not insert and address in self.hw_breakpoints:
                self.hw_breakpoints.remove(address)
        elif ztype in WATCH_KINDS and not self.data_breakpoints:
            # This host's KVM does not deliver data breakpoints: write watchpoints by
            # single-stepping and comparing; read/access ones cannot be had (gdb is told so).
            if ztype != "2":
                return ""
            if insert:
                self.stepped_watches[(address, length)] = self._peek(address, length)
            else:
                self.stepped_watches.pop((address, length), None)
        elif ztype in WATCH_KINDS:
            entry = (address, length, WATCH_KINDS[ztype], ztype)
            if insert:
                self.watchpoints.append(entry)
            elif entry in self.watchpoints:
                self.watchpoints.remove(entry)
        else:
            return ""
        try:
            self._apply_debug()
        except ValueError:  # more than the four debug registers, or a misaligned watch
            if ztype == "1":
                self.hw_breakpoints.remove(address)
            elif ztype in WATCH_KINDS:
                self.watchpoints.remove((address, length, WATCH_KINDS[ztype], ztype))
            self._apply_debug()
            return "E1c"  # ENOSPC
        return "OK"

    def _insert_sw_breakpoint(self, address: int) -> str:
        assert self.state is not None
        if address in self.sw_breakpoints:
            return "OK"
        if self.unpatched:   # the backend stops there itself: guest memory stays as it is
            self.sw_breakpoints[address] = None
            self._apply_debug()
            return "OK"
        try:
            original = read_linear(self.memory, self.state, address, 1)[0]
            write_linear(self.memory, self.state, address, bytes((INT3,)))
        except (TranslationError, GuestMemoryError):
            return "E14"
        self.sw_breakpoints[address] = original
        self._apply_debug()
        return "OK"

    def _remove_sw_breakpoint(self, address: int) -> None:
        original = self.sw_breakpoints.pop(address, None)
        if original is not None and self.state is not None:
            try:
                write_linear(self.memory, self.state, address, bytes((original,)))
            except (TranslationError, GuestMemoryError):
                pass

    # -- monitor commands ---------------------------------------------------------------------

    def _monitor(self, command: str) -> str:
        """``monitor regs`` (with the hidden segment state), ``monitor disas [ADDR [N]]``
        (x86vm's own disassembler), ``monitor trace on|off``, ``monitor help``."""
        words = command.split()
        assert self.state is not None
        state = self.state
        if not words or words[0] == "help":
            text = ("regs                 registers with the hidden segment state\n"
                    "disas [ADDR [COUNT]] x86vm's disassembly (AT&T, objdump's text)\n"
                    "trace on|off         record trace events (x86vm run --trace)\n")
        elif words[0] == "regs":
            report = crash_report(state, memory_reader(self.memory, state), "stopped by gdb")
            text = report.split("All code\n", 1)[0].split("\n", 1)[1]
        elif words[0] == "disas":
            text = self._disassemble(int(words[1], 16) if len(words) > 1 else state.rip,
                                     int(words[2], 0) if len(words) > 2 else 8)
        elif words[0] == "trace" and len(words) == 2 and words[1] in ("on", "off"):
            text = self._trace(words[1] == "on")
        else:
            text = f"unknown monitor command {command!r} (try: monitor help)\n"
        for start in range(0, len(text), 512):
            self._send("O" + text[start:start + 512].encode().hex())
        return "OK"

    def _disassemble(self, address: int, count: int) -> str:
        assert self.state is not None
        bits = code_bits(self.state)
        format_one = decoder_formatter(bits)
        try:
            data = read_linear(self.memory, self.state, address, 15 * max(1, min(count, 64)))
        except TranslationError as exc:
            data = getattr(exc, "partial", b"")
        lines, offset = [], 0
        for _ in range(max(1, min(count, 64))):
            if offset >= len(data):
                break
            length, text = format_one(data, offset, address + offset, lambda a: f"{a:#x}")
            if length < 1:
                break
            lines.append(f"{address + offset:#x}:\t{data[offset:offset + length].hex(' '):21}"
                         f"\t{text}")
            offset += length
        return "\n".join(lines) + "\n" if lines else f"cannot read memory at {address:#x}\n"

    def _trace(self, on: bool) -> str:
        tracer = self.tracer
        if tracer is None:
            return "no tracer: start x86vm run with --trace EVENTS\n"
        if on:
            attached = tracer.attach_exits(self.inner)
            hooked = tracer.attach_backend(self.backend)
            hooked = tracer.attach_lines(tracer.line_sources) or hooked
            if not attached and not hooked:
                return "no exit events enabled\n"
            return "tracing exits\n" if attached else "tracing the backend's events\n"
        tracer.detach()
        return "tracing stopped\n"


_ADDRESS = re.compile(r"(?:tcp:)?(?:([\w.-]*):)?(\d+)")


def parse_address(text: str) -> tuple[str, int]:
    """``tcp::1234``, ``tcp:HOST:1234``, ``:1234`` or ``1234`` (QEMU's -gdb spelling) as
    (host, port); the host defaults to 127.0.0.1."""
    match = _ADDRESS.fullmatch(text.strip())
    if match is None or not 0 <= int(match.group(2)) <= 0xFFFF:
        raise ValueError(f"bad --gdb {text!r}: expected tcp::PORT or tcp:HOST:PORT")
    return match.group(1) or "127.0.0.1", int(match.group(2))


def add_options(parser) -> None:
    parser.add_argument("--gdb", metavar="tcp::PORT",
                        help="serve the GDB remote protocol on this TCP port (QEMU's spelling)")
    parser.add_argument("--wait-gdb", action="store_true",
                        help="with --gdb: wait for gdb to connect before the guest starts")


def start(args, machine) -> GdbStub | None:
    """The stub for ``--gdb``, attached to ``machine``'s backend; None without ``--gdb``.
    Raises ValueError for a bad address or a backend that cannot be debugged, OSError if the
    port cannot be bound."""
    if not getattr(args, "gdb", None):
        if getattr(args, "wait_gdb", False):
            raise ValueError("--wait-gdb needs --gdb tcp::PORT")
        return None
    host, port = parse_address(args.gdb)
    stub = GdbStub(machine.backend, machine.memory, machine.request_stop, port, host,
                   wait=args.wait_gdb)
    stub.attach()
    machine.on_debug_stop = stub.on_debug_stop
    if args.wait_gdb:
        print(f"x86vm: waiting for gdb on {host}:{stub.port}", file=sys.stderr, flush=True)
    return stub
