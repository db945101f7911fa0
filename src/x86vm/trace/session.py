"""``x86vm run --trace``: the options, attaching a tracer before the run, writing it after."""

from __future__ import annotations

import argparse
import os
import sys

from x86vm.trace.output import write_json, write_text
from x86vm.trace.tracer import DEFAULT_RING_SIZE, EVENT_IDS, TraceError, Tracer


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", metavar="EVENTS",
                        help="record events, comma-separated globs (e.g. 'exit:*,irq:*'; "
                             "'insn', instruction tracing on emu, only by its name); "
                             f"events: {', '.join(EVENT_IDS)}")
    parser.add_argument("--trace-file", metavar="PATH",
                        help="write the trace here (*.json: Chrome/Perfetto trace-event JSON; "
                             "else ftrace-style text), truncated and written when the run ends; "
                             "default: text on stderr")
    parser.add_argument("--trace-buffer", type=int, default=DEFAULT_RING_SIZE, metavar="N",
                        help=f"events kept per vCPU, a power of two (default "
                             f"{DEFAULT_RING_SIZE})")


def start(args: argparse.Namespace, backend: object,
          events_from: object | None = None) -> Tracer | None:
    """A tracer for ``--trace`` with its exit hook on ``backend`` (whose ``run`` the loop
    calls) and the events ``events_from`` records itself (the backend proper, default
    ``backend``); None without ``--trace``. Raises TraceError for a pattern that matches
    nothing."""
    if not args.trace:
        return None
    tracer = Tracer(args.trace, args.trace_buffer)
    tracer.attach_exits(backend)
    tracer.attach_backend(backend if events_from is None else events_from)
    return tracer


def attach_board(tracer: Tracer | None, board: object) -> None:
    """Once the board is built: ``irq:raise`` from its Python chipset's IRQ lines (with
    KVM's in-kernel irqchip the lines are the kernel's, and nothing is recorded)."""
    chipset = getattr(board, "chipset", None)
    if tracer is not None and chipset is not None:
        tracer.attach_lines(chipset.lines)


def finish(tracer: Tracer | None, args: argparse.Namespace) -> None:
    """Format and write the trace (after the run: the recording path formats nothing)."""
    if tracer is None:
        return
    tracer.detach()
    path = args.trace_file
    if path is None:
        sys.stdout.flush()
        write_text(tracer, sys.stderr)
        return
    try:
        # O_NONBLOCK: a FIFO nobody reads is an error (ENXIO), not a hang after the run
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK, 0o666)
        os.set_blocking(fd, True)
        with open(fd, "w", encoding="utf-8") as out:
            (write_json if path.endswith(".json") else write_text)(tracer, out)
    except OSError as exc:
        print(f"x86vm: cannot write the trace to {path}: {exc.strerror}", file=sys.stderr)


__all__ = ["add_options", "start", "attach_board", "finish", "TraceError"]
