"""Event tracing: patterns, the ring, the exit hook in the real run loop, the two outputs.

The JSON output is checked against the Trace Event Format (JSON Object Format: a
``traceEvents`` array; every event with ``name``, ``ph``, ``pid``, ``tid``; timed events with
``ts`` in microseconds; instants with a scope ``s`` of g/p/t; metadata ``M`` events naming the
process and threads in ``args.name``).
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from importlib import resources

import pytest

from test_kvm_support import runs_guests
from x86vm.machine.backend import StopRequest
from x86vm.machine.bus import MmioBus, PortBus
from x86vm.machine.exits import Halt, IoExit, MmioExit
from x86vm.machine.runloop import run_loop
from x86vm.trace.output import trace_events, write_json, write_text
from x86vm.trace.tracer import EVENT_IDS, Ring, TraceError, Tracer, select_events

PHASES = set("BEXiIbneCMsftPONDcRr(")
TEXT_LINE = re.compile(r"^ *vcpu(\d+)-(\d+) \[(\d{3})\] +(\d+\.\d{6}): ([a-z:]+): (.*)$")


def validate_trace_event_json(document: object) -> list[dict]:
    """Assert ``document`` is a Trace Event Format JSON object; return its events."""
    assert isinstance(document, dict) and isinstance(document.get("traceEvents"), list)
    assert document.get("displayTimeUnit", "ms") in ("ms", "ns")
    events = document["traceEvents"]
    for event in events:
        assert isinstance(event.get("name"), str), event
        assert event.get("ph") in PHASES, event
        assert isinstance(event.get("pid"), int) and isinstance(event.get("tid"), int), event
        assert isinstance(event.get("args", {}), dict), event
        if event["ph"] == "M":
            assert event["name"] in ("process_name", "thread_name", "process_labels",
                                     "process_sort_index", "thread_sort_index"), event
            assert isinstance(event["args"].get("name"), str), event
            continue
        assert isinstance(event.get("ts"), (int, float)) and event["ts"] >= 0, event
        if event["ph"] in "iI":
            assert event.get("s", "t") in ("g", "p", "t"), event
        if event["ph"] == "X":
            assert isinstance(event.get("dur"), (int, float)), event
        assert isinstance(event.get("cat", ""), str)
    return events


def test_patterns_select_events_and_unknown_ones_are_errors() -> None:
    assert select_events("exit:*") == {n for n in EVENT_IDS if n.startswith("exit:")}
    assert select_events("exit:io, irq:*") == {"exit:io", "irq:raise", "irq:inject"}
    assert select_events("*") == set(EVENT_IDS) - {"insn"}  # insn only by its name
    assert "insn" in select_events("insn,exit:io")
    with pytest.raises(TraceError, match="'exits:io' matches no event"):
        select_events("exit:io,exits:io")
    with pytest.raises(TraceError, match="power of two"):
        Ring(1000, 0)


def test_the_ring_keeps_the_newest_events_and_counts_the_rest() -> None:
    tracer = Tracer("irq:raise", ring_size=8, clock=iter(range(100, 200)).__next__)
    record = tracer.recorder("irq:raise")
    assert tracer.recorder("irq:inject") is None  # off: the caller records nothing
    for irq in range(11):
        record(irq, 1)
    ring = tracer.rings[0]
    assert ring.dropped == 3
    assert [e[2] for e in ring.events()] == [(i, 1) for i in range(3, 11)]
    assert tracer.counts() == {"irq:raise": 8, "(dropped)": 3}
    out = io.StringIO()
    write_text(tracer, out)
    assert "entries-in-buffer/entries-written: 8/11" in out.getvalue()
    assert out.getvalue().splitlines()[-1].endswith(": irq:raise: irq=0xa level=0x1")


class ScriptedBackend:
    """Plays a list of exits; a read's data is filled in by the run loop."""

    name = "scripted"
    buffered_writes = None

    def __init__(self, exits, stop: StopRequest) -> None:
        self.exits, self.stop = list(exits), stop
        self.completed = []

    def run(self):
        if not self.exits:
            self.stop.request(0, "script done")
            return None
        return self.exits.pop(0)

    def complete_io(self, ex) -> None:
        self.completed.append(ex)

    def interrupt(self) -> None:
        pass

    def running(self):
        import contextlib

        return contextlib.nullcontext()


class Register:
    def __init__(self, value: int) -> None:
        self.value, self.writes = value, []

    def read(self, offset: int, size: int) -> int:
        return self.value

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes.append(value)


def scripted_run(patterns: str):
    pio, mmio, stop = PortBus(), MmioBus(), StopRequest()
    pio.register(0x60, 1, Register(0x5A))
    mmio.register(0xFEE00000, 0x1000, Register(0x12345678))
    exits = [IoExit(0x60, 1, False, bytearray(1)), IoExit(0x61, 1, True, bytearray(b"\x07")),
             MmioExit(0xFEE000B0, 4, False, bytearray(4)),
             MmioExit(0xFEE00300, 4, True, bytearray((0x4500).to_bytes(4, "little"))),
             IoExit(0x3F8, 1, True, bytearray(b"hi"), count=2), Halt()]
    backend = ScriptedBackend(exits, stop)
    tracer = Tracer(patterns, clock=iter(range(0, 10**9, 1500)).__next__)
    original = backend.run
    tracer.attach_exits(backend)
    result = run_loop(backend, pio, mmio, stop)
    tracer.detach()
    assert backend.run == original
    return tracer, result


def test_exit_events_from_the_real_run_loop_match_its_count() -> None:
    tracer, result = scripted_run("exit:*")
    assert result.exits == 6 and sum(tracer.counts().values()) == result.exits
    out = io.StringIO()
    write_text(tracer, out)
    lines = [TEXT_LINE.match(ln) for ln in out.getvalue().splitlines() if not ln.startswith("#")]
    assert all(lines) and len(lines) == 6
    assert [m.group(6) for m in lines] == [
        "port=0x60 size=1 dir=in data=0x5a",  # the value the device gave, read after the run
        "port=0x61 size=1 dir=out data=0x7",
        "gpa=0xfee000b0 size=4 dir=read data=0x12345678",
        "gpa=0xfee00300 size=4 dir=write data=0x4500",
        "port=0x3f8 size=1 dir=out data=0x68 count=2 bytes=6869",
        ""]
    assert [m.group(5) for m in lines][-1] == "exit:halt"
    assert [m.group(4) for m in lines][:2] == ["0.000001", "0.000003"]  # 1.5 us steps


def test_only_enabled_exits_are_recorded_and_none_means_no_hook() -> None:
    tracer, result = scripted_run("exit:mmio")
    assert tracer.counts() == {"exit:mmio": 2}
    backend = ScriptedBackend([], StopRequest())
    assert Tracer("irq:*").attach_exits(backend) is False
    assert "run" not in vars(backend)  # nothing swapped in: tracing off costs nothing


def test_json_is_trace_event_format() -> None:
    tracer, _ = scripted_run("exit:*")
    out = io.StringIO()
    write_json(tracer, out)
    events = validate_trace_event_json(json.loads(out.getvalue()))
    instants = [e for e in events if e["ph"] == "i"]
    assert len(instants) == 6
    assert instants[0] == {"name": "exit:io", "cat": "exit", "ph": "i", "s": "t", "ts": 1.5,
                           "pid": tracer.pid, "tid": tracer.rings[0].tid,
                           "args": {"port": 0x60, "size": 1, "dir": "in", "data": 0x5A}}
    names = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert names == {"x86vm", "vcpu0"}
    with pytest.raises(AssertionError):  # the validator rejects what the format forbids
        validate_trace_event_json({"traceEvents": [{"name": "x", "ph": "i", "pid": 1}]})


@runs_guests
def test_a_kvm_run_traces_every_exit(tmp_path) -> None:
    from test_cli_run import x86vm

    if not resources.files("x86vm").joinpath("guests", "hello.bin").is_file():
        pytest.skip("bundled guest not built")
    path = tmp_path / "trace.json"
    done = x86vm("run", "--trace", "exit:*", "--trace-file", path, "--serial", "none")
    assert done.returncode == 0, done.stderr
    events = validate_trace_event_json(json.loads(path.read_text()))
    writes = "".join(chr(e["args"]["data"]) for e in events
                     if e["name"] == "exit:io" and e["args"]["port"] == 0x3F8
                     and e["args"]["dir"] == "out")
    assert "Hello" in writes or "hello" in writes.lower(), writes

    from x86vm.devices.console import open_console
    from x86vm.devices.pc import attach_pc_devices
    from x86vm.machine.boot import load_image
    from x86vm.machine.vm import Machine

    with Machine(memory_size=16 << 20, backend="kvm") as machine:
        console = open_console("none")
        attach_pc_devices(machine, console=console, debug_exit_port=0xF4)
        image = resources.files("x86vm").joinpath("guests", "hello.bin").read_bytes()
        entry = load_image(machine.memory, image)
        tracer = Tracer("exit:*")
        tracer.attach_exits(machine.backend)
        result = machine.run(entry, timeout=30)
        console.close()
    assert result.exits > 10 and sum(tracer.counts().values()) == result.exits
    assert validate_trace_event_json(trace_events(tracer))


@pytest.mark.slow
@runs_guests
def test_a_linux_boot_traced_on_kvm_counts_what_the_buses_count() -> None:
    """``exit:*`` on the Linux guest (40 s of its boot on KVM): one event per exit, as many
    as the buses dispatched (``Machine.exit_stats``, what ``--stats`` prints), and the JSON
    is the Trace Event Format."""
    from test_linux_guest import SOFTWARE_KVM_CMDLINE, cached
    from x86vm.devices.console import open_console
    from x86vm.devices.pc import attach_pc_devices
    from x86vm.machine.boot import load_image
    from x86vm.machine.vm import Machine

    bzimage, initrd = cached("bzImage"), cached("initramfs.cpio")
    with Machine(memory_size=128 << 20, backend="kvm") as machine:
        board = attach_pc_devices(machine, console=open_console("none"), debug_exit_port=0xF4)
        entry = load_image(machine.memory, bzimage.read_bytes(), "linux",
                           cmdline=f"console=ttyS0 {SOFTWARE_KVM_CMDLINE}",
                           initrd=initrd.read_bytes(), **board.boot_options())
        tracer = Tracer("exit:*", ring_size=1 << 20)
        tracer.attach_exits(machine.backend)
        result = machine.run(entry, timeout=40)
        stats = machine.exit_stats()
        board.close()
    counts = tracer.counts()
    dispatched = sum(stats[bus]["reads"] + stats[bus]["writes"] for bus in ("pio", "mmio"))
    assert "(dropped)" not in counts and result.exits > 1000
    assert sum(counts.values()) == result.exits
    assert counts["exit:io"] + counts["exit:mmio"] == dispatched
    out = io.StringIO()
    write_json(tracer, out)
    assert len(validate_trace_event_json(json.loads(out.getvalue()))) == result.exits + 2


def _stats(stderr: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^x86vm: stats: (\S+) (\d+)$", stderr, re.M)}


def assert_irq_events_match_stats(events: list[dict], stats: dict[str, int]) -> None:
    """``irq:raise`` with level 1 = the chipset's rising edges, line by line (``--stats``
    ``irq.raised``, ``irq.raised.N``); ``irq:inject`` = the interrupts the CPU acknowledged
    (``irq.taken``); every line's levels alternate, starting from the level it had."""
    raised = Counter(e["args"]["irq"] for e in events
                     if e["name"] == "irq:raise" and e["args"]["level"] == 1)
    assert sum(raised.values()) == stats["irq.raised"] > 0
    assert {f"irq.raised.{irq}": n for irq, n in raised.items()} == {
        k: v for k, v in stats.items() if k.startswith("irq.raised.")}
    injected = [e["args"]["vector"] for e in events if e["name"] == "irq:inject"]
    assert len(injected) == stats["irq.taken"] > 0
    levels: dict[int, list[int]] = {}
    for e in events:
        if e["name"] == "irq:raise":
            levels.setdefault(e["args"]["irq"], []).append(e["args"]["level"])
    for irq, seen in levels.items():
        assert all(a != b for a, b in zip(seen, seen[1:], strict=False)), (irq, seen)


def test_an_emu_run_traces_what_its_stats_count(tmp_path) -> None:
    """``--trace`` with every emu event, instruction tracing included, on the long-mode PVH
    guest (paging and long mode switched on: CR and EFER writes; a timer interrupt; port and
    MMIO exits): the JSON is the Trace Event Format and its counts are ``--stats``'s."""
    from guests.build import build, missing_tools
    from test_cli_run import x86vm

    if missing_tools():
        pytest.skip("cannot build the guest: gcc/ld missing")
    guest = build("long64_pvh.elf", tmp_path)
    path = tmp_path / "trace.json"
    done = x86vm("run", guest, "--backend", "emu", "--trace",
                 "exit:*,irq:*,exception,mode:cr,emu:block,insn", "--trace-buffer", 1 << 15,
                 "--trace-file", path, "--stats", "--serial", "none")
    assert done.returncode == 0x43, done.stderr  # the guest's "all done" status
    stats = _stats(done.stderr)
    events = [e for e in validate_trace_event_json(json.loads(path.read_text()))
              if e["ph"] != "M"]
    counts = Counter(e["name"] for e in events)
    assert counts["insn"] == stats["instructions"] > 10000
    assert counts["emu:block"] == stats["blocks"]
    assert counts["exit:io"] + counts["exit:mmio"] == stats["exits"]
    directions = {("pio", "reads"): ("exit:io", "in"), ("pio", "writes"): ("exit:io", "out"),
                  ("mmio", "reads"): ("exit:mmio", "read"),
                  ("mmio", "writes"): ("exit:mmio", "write")}
    for (bus, stat), (name, direction) in directions.items():
        elements = sum(e["args"].get("count", 1) for e in events
                       if e["name"] == name and e["args"]["dir"] == direction)
        assert elements == stats[f"{bus}.{stat}"] > 0, (bus, stat)
    assert [e["args"]["register"] for e in events if e["name"] == "mode:cr"] == [
        "cr4", "cr3", "efer", "cr0"]
    assert [e["args"]["vector"] for e in events if e["name"] == "irq:inject"] == [0x20]
    assert [(e["args"]["irq"], e["args"]["level"]) for e in events
            if e["name"] == "irq:raise"] == [(0, 0), (0, 1)]  # the PIT's OUT (mode 2)
    assert_irq_events_match_stats(events, stats)
    # x86vm's disassembly of the bytes the guest ran is objdump's (a sample of each mode)
    from oracle.objdump import objdump

    seen: dict[tuple[int, int], dict] = {}
    for e in events:
        if e["name"] == "insn":
            seen.setdefault((e["args"]["bits"], e["args"]["address"]), e["args"])
    for bits in (32, 64):
        sample = [args for (b, _), args in seen.items() if b == bits][:15]
        assert sample, bits
        for args in sample:
            expected = objdump(bytes.fromhex(args["bytes"]), bits, address=args["address"])
            assert args["insn"] == expected[0][2].rstrip(), args
    movs = [e["args"] for e in events if e["name"] == "insn"
            and e["args"]["insn"].startswith("mov    $0x")
            and e["args"]["insn"].endswith(",%edi")]
    assert movs and all(m["regs"].startswith("rdi=0x") for m in movs), movs[:3]


def test_emu_hooks_are_none_unless_their_event_is_on_and_detach_clears_them() -> None:
    from x86vm.machine.vm import Machine

    with Machine(memory_size=1 << 20, backend="emu") as machine:
        cpu = machine.backend.cpu
        tracer = Tracer("exit:*,exception")
        assert tracer.attach_backend(machine.backend)
        assert cpu.trace_exception is not None
        assert (cpu.trace_irq, cpu.trace_cr, cpu.trace_block, cpu.trace_insn) == (None,) * 4
        assert not cpu.debugging  # the fast dispatcher still runs
        tracer.detach()
        assert cpu.trace_exception is None
        Tracer("insn").attach_backend(machine.backend)
        assert cpu.trace_insn is not None and cpu.debugging


@pytest.mark.slow
def test_a_linux_boot_traced_on_emu_counts_what_its_stats_count(tmp_path) -> None:
    """Every emu event but ``insn`` over 60 s of the Linux guest's boot on emu: the counts
    are ``--stats``'s (exits by bus and direction, blocks translated), the kernel's own CR
    writes and interrupts are there, the JSON is the Trace Event Format and the text has
    one ftrace line per event."""
    from test_cli_run import x86vm
    from test_linux_guest import UNATTENDED_CMDLINE, cached

    path, text = tmp_path / "linux.json", tmp_path / "linux.txt"
    runs = {}
    for out in (path, text):
        runs[out] = x86vm("run", cached("bzImage"), "--initrd", cached("initramfs.cpio"),
                          "--cmdline", UNATTENDED_CMDLINE, "--backend", "emu", "--trace",
                          "exit:*,irq:*,exception,mode:cr,emu:block", "--trace-buffer",
                          1 << 21, "--trace-file", out, "--stats", "--timeout", "60",
                          "--serial", "none", timeout=240)
    stats = _stats(runs[path].stderr)
    events = [e for e in validate_trace_event_json(json.loads(path.read_text()))
              if e["ph"] != "M"]
    counts = Counter(e["name"] for e in events)
    assert counts["emu:block"] == stats["blocks"] > 1000
    assert sum(v for k, v in counts.items() if k.startswith("exit:")) == stats["exits"]
    for (bus, stat), (name, direction) in {
            ("pio", "reads"): ("exit:io", "in"), ("pio", "writes"): ("exit:io", "out"),
            ("mmio", "reads"): ("exit:mmio", "read"),
            ("mmio", "writes"): ("exit:mmio", "write")}.items():
        elements = sum(e["args"].get("count", 1) for e in events
                       if e["name"] == name and e["args"]["dir"] == direction)
        assert elements == stats[f"{bus}.{stat}"], (bus, stat)
    assert counts["irq:inject"] > 0 and counts["exception"] > 0
    assert_irq_events_match_stats(events, stats)
    assert {e["args"]["register"] for e in events if e["name"] == "mode:cr"} >= {"cr3", "cr4"}
    text_stats = _stats(runs[text].stderr)  # another run: the timeout is wall-clock time
    names = Counter(TEXT_LINE.match(line).group(5)
                    for line in text.read_text().splitlines() if not line.startswith("#"))
    assert names["emu:block"] == text_stats["blocks"]
    assert sum(v for k, v in names.items() if k.startswith("exit:")) == text_stats["exits"]


def test_irq_raise_records_level_changes_of_the_chipset_lines_only_while_on() -> None:
    """``irq:raise`` hooks the Python chipset's IRQ lines (None when off, cleared by
    ``detach``): one event per level change, not per call; ``--stats``' rising edges are
    counted either way."""
    from x86vm.devices.chipset import build_chipset
    from x86vm.machine.timers import GuestTimers

    chipset = build_chipset(GuestTimers(lambda: 0, lambda deadline: None), firmware=False)
    line = chipset.irq_line(4)
    assert Tracer("exit:*").attach_lines(chipset.lines) is False
    assert line.trace is None
    tracer = Tracer("irq:raise", clock=iter(range(1000)).__next__)
    assert tracer.attach_lines(chipset.lines)
    for level in (True, True, False, False, True):
        line.set_level(level)
    chipset.irq_line(9).set_level(True)
    tracer.detach()
    assert line.trace is None
    line.set_level(False)  # off again: not recorded, still counted
    line.set_level(True)
    assert [e[2] for e in tracer.rings[0].events()] == [(4, 1), (4, 0), (4, 1), (9, 1)]
    assert chipset.interrupt_stats() == {"irq.raised": 4, "irq.raised.4": 3,
                                         "irq.raised.9": 1, "irq.taken": 0}
