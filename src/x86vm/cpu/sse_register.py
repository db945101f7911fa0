"""Registers the MMX/SSE helpers with the interpreter table (imported by cpu/ops.py)."""

from __future__ import annotations

from x86vm.cpu import sse42, sse_exec, sse_fexec
from x86vm.cpu.ops import register_helpers

register_helpers(sse_exec.HELPERS, continuing=True)
register_helpers(sse_fexec.HELPERS, continuing=True)
register_helpers(sse42.HELPERS, continuing=True)
