"""Trace output, made when the rings are read: ftrace-style text and Chrome trace-event JSON.

Text follows the ftrace ``trace`` file: ``<task>-<pid> [cpu] timestamp: event: fields``
(Documentation/trace/ftrace.rst, "Output format"), the task being ``vcpuN`` and the pid the
vCPU thread's id. JSON follows the Trace Event Format (the JSON Object Format:
``{"traceEvents": [...], "displayTimeUnit": "ns"}``): each event an instant (``"ph": "i"``,
thread scope ``"s": "t"``) with ``name``, ``cat`` (the event's category), ``ts`` in
microseconds, ``pid``, ``tid`` and ``args``; ``"ph": "M"`` metadata names the process and
the vCPU threads. Perfetto's UI and chrome://tracing open it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import IO

from x86vm.cpu.state import GPR_NAMES
from x86vm.disasm.listing import decoder_formatter
from x86vm.machine.exits import DebugStop, Hypercall, InternalError, IoExit, MmioExit, Shutdown
from x86vm.trace.tracer import EVENTS, Tracer

PROCESS_NAME = "x86vm"


def _data_value(data: bytes | bytearray, size: int) -> int:
    return int.from_bytes(bytes(data[:size]), "little")


def event_args(payload: object, fields: tuple[str, ...]) -> dict[str, object]:
    """The fields of one recorded payload, by name (exits as the run left them)."""
    cls = payload.__class__
    if cls is IoExit:
        args: dict[str, object] = {"port": payload.port, "size": payload.size,
                                   "dir": "out" if payload.is_write else "in",
                                   "data": _data_value(payload.data, payload.size)}
        if payload.count != 1:
            args["count"] = payload.count
            args["bytes"] = bytes(payload.data).hex()
        return args
    if cls is MmioExit:
        return {"gpa": payload.gpa, "size": payload.size,
                "dir": "write" if payload.is_write else "read",
                "data": _data_value(payload.data, payload.size)}
    if cls is Shutdown or cls is InternalError:
        return {"reason": payload.reason}
    if cls is Hypercall:
        return {"nr": payload.nr, "args": list(payload.args), "ret": payload.ret}
    if cls is DebugStop:
        return {"pc": payload.pc}
    if isinstance(payload, tuple):
        return dict(zip(fields, payload, strict=False))
    return {}


REGISTER_NAMES = (*GPR_NAMES, "rflags")


@functools.cache
def _formatter(bits: int):
    return decoder_formatter(bits)


def insn_args(payload: tuple) -> dict[str, object]:
    """An ``insn`` event: its address, bytes, x86vm's disassembly (made now, when the
    trace is read) and the registers the instruction changed, with their new values."""
    address, code, bits, changes = payload
    length, text = _formatter(bits)(code, 0, address, lambda a: f"{a:#x}") if code else (0, "")
    regs = " ".join(f"{REGISTER_NAMES[i]}={value:#x}" for i, value in changes)
    return {"address": address, "bits": bits, "bytes": bytes(code[:max(length, 0)]).hex(" "),
            "insn": text, "regs": regs}


ARGS_OF = {"insn": insn_args}
"""Events whose payload needs more than naming its fields."""


def _field_text(name: str, value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and name not in ("size", "count"):
        return f"{name}={value:#x}"
    if isinstance(value, str) and " " in value:
        return f'{name}="{value}"'
    return f"{name}={value}"


def records(tracer: Tracer) -> Iterator[tuple[int, int, str, dict[str, object]]]:
    """``(cpu, ns since the tracer started, event name, args)`` for every kept event, by
    vCPU then in order."""
    for cpu in sorted(tracer.rings):
        for event, stamp, payload in tracer.rings[cpu].events():
            kind = EVENTS[event]
            special = ARGS_OF.get(kind.name)
            args = special(payload) if special else event_args(payload, kind.fields)
            yield cpu, stamp - tracer.start_ns, kind.name, args


def write_text(tracer: Tracer, out: IO[str]) -> None:
    """ftrace-style lines, a header like ftrace's first."""
    total = sum(r.head for r in tracer.rings.values())
    kept = sum(min(r.head, len(r.slots)) for r in tracer.rings.values())
    out.write(f"# tracer: x86vm\n#\n# entries-in-buffer/entries-written: {kept}/{total}\n#\n"
              "#           TASK-PID     CPU#     TIMESTAMP  FUNCTION\n#              | |         |"
              "         |         |\n")
    tids = {cpu: ring.tid for cpu, ring in tracer.rings.items()}
    for cpu, ns, name, args in records(tracer):
        task = f"vcpu{cpu}-{tids[cpu]}"
        fields = " ".join(_field_text(k, v) for k, v in args.items())
        out.write(f"{task:>22} [{cpu:03d}] {ns // 1000 / 1e6:12.6f}: {name}: {fields}\n")


def trace_events(tracer: Tracer) -> dict[str, object]:
    """The trace as a Trace Event Format JSON object."""
    events: list[dict[str, object]] = [
        {"name": "process_name", "ph": "M", "pid": tracer.pid, "tid": 0,
         "args": {"name": PROCESS_NAME}}]
    for cpu, ring in sorted(tracer.rings.items()):
        events.append({"name": "thread_name", "ph": "M", "pid": tracer.pid, "tid": ring.tid,
                       "args": {"name": f"vcpu{cpu}"}})
    tids = {cpu: ring.tid for cpu, ring in tracer.rings.items()}
    for cpu, ns, name, args in records(tracer):
        events.append({"name": name, "cat": name.split(":", 1)[0], "ph": "i", "s": "t",
                       "ts": ns / 1000, "pid": tracer.pid, "tid": tids[cpu], "args": args})
    return {"traceEvents": events, "displayTimeUnit": "ns"}


def write_json(tracer: Tracer, out: IO[str]) -> None:
    json.dump(trace_events(tracer), out, separators=(",", ":"))
    out.write("\n")
