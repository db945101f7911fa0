"""`x86vm disasm` in-process beside `objdump` as a subprocess: the two ends of the
disassembler's differential tests."""

from __future__ import annotations

import subprocess

from x86vm.cli import main


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run `x86vm disasm ARGS` in this process: (exit status, stdout, stderr)."""
    try:
        code = main(["disasm", *args])
    except SystemExit as exc:  # argparse-level errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def objdump(args: list[str]) -> subprocess.CompletedProcess:
    """`objdump ARGS` (the oracle), text output with undecodable bytes kept."""
    return subprocess.run(["objdump", *args], capture_output=True, text=True,
                          errors="surrogateescape", timeout=120)
