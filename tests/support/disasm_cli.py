"""`x86vm disasm` in-process beside `objdump` as a subprocess: the two ends of the
disassembler's differential tests."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from x86vm.cli import main

#: objdump's ``-m`` machine for each code size of a raw binary (``-b binary``)
MACHINES = {16: "i8086", 32: "i386", 64: "i386:x86-64"}


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


def random_binaries(work: Path, tag: str, size: int) -> dict[int, str]:
    """One file of ``size`` random bytes per code size (16, 32, 64), seeded by ``tag`` and
    the size (the same bytes every run), for ``-D -b binary -m MACHINES[size]``."""
    files = {}
    for mode in MACHINES:
        path = Path(work) / f"random{mode}.bin"
        path.write_bytes(random.Random(f"{tag}-{mode}").randbytes(size))
        files[mode] = str(path)
    return files
