#!/usr/bin/env python3
"""Whole listings of system binaries with objdump's everyday options, x86vm against objdump.

  python3 tests/tools/disasm_options_corpus.py [--sample N] [--max-mb M] [--jobs J]
      [--options "-dCr -M intel --no-show-raw-insn"] [--options "-dl"] [DIR...]

For each ELF file of the directories (default /usr/bin and /usr/lib/x86_64-linux-gnu; a
seeded random sample of N when --sample is given, files above M MiB left out), runs
``objdump OPTIONS FILE`` and ``python3 -m x86vm disasm OPTIONS FILE`` and compares standard
output and exit status byte for byte.  Prints, per option set, the files identical and
different and the differing lines, with the first differences.  A developer tool (run it
under the heavy lock: it is minutes of CPU), not a test.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import functools
import os
import random
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIRS = ["/usr/bin", "/usr/lib/x86_64-linux-gnu"]
DEFAULT_OPTIONS = ["-dCr -M intel --no-show-raw-insn", "-dl"]


def elf_files(dirs: list[str], max_bytes: int) -> list[str]:
    out = []
    for directory in dirs:
        if not os.path.isdir(directory):        # a file named on the command line
            out.append(directory)
            continue
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                size = entry.stat().st_size
                with open(entry.path, "rb") as f:
                    if f.read(5) not in (b"\x7fELF\x02", b"\x7fELF\x01"):
                        continue
            except OSError:
                continue
            if 0 < size <= max_bytes:
                out.append(entry.path)
    return out


def compare(path: str, options: list[str], timeout: float) -> tuple[str, int, list[str]]:
    """(path, differing lines, first differences) -- -1 lines when a side timed out."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "X86VM_DISASM_JOBS": "1"}
    try:
        theirs = subprocess.run(["objdump", *options, path], capture_output=True,
                                timeout=timeout)
        ours = subprocess.run([sys.executable, "-m", "x86vm", "disasm", *options, path],
                              capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return path, -1, ["timeout"]
    if theirs.stdout == ours.stdout and theirs.returncode == ours.returncode:
        return path, 0, []
    a = theirs.stdout.decode("utf-8", "replace").splitlines()
    b = ours.stdout.decode("utf-8", "replace").splitlines()
    diff = [line for line in difflib.unified_diff(a, b, "objdump", "x86vm", n=0, lineterm="")
            if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    if theirs.returncode != ours.returncode:
        diff.append(f"status objdump {theirs.returncode} x86vm {ours.returncode}: "
                    f"{ours.stderr.decode(errors='replace').strip()[:200]}")
    return path, max(1, sum(1 for line in diff if line.startswith("-"))), diff[:6]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", default=DEFAULT_DIRS, help="directories or files")
    parser.add_argument("--options", action="append", help="an objdump option string")
    parser.add_argument("--sample", type=int, help="a seeded random sample of N files")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--max-mb", type=float, default=1e9)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    files = elf_files(args.dirs, int(args.max_mb * (1 << 20)))
    total = len(files)
    if args.sample and args.sample < total:
        files = sorted(random.Random(args.seed).sample(files, args.sample))
    print(f"{len(files)} of {total} ELF files", flush=True)
    failed = False
    for option_text in args.options or DEFAULT_OPTIONS:
        options = shlex.split(option_text)
        same = different = lines = 0
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            job = functools.partial(compare, options=options, timeout=args.timeout)
            for path, count, first in pool.map(job, files):
                if count == 0:
                    same += 1
                    continue
                different += 1
                lines += max(count, 0)
                print(f"  {path}: {count} differing lines", *first, sep="\n    ", flush=True)
        print(f"{option_text}: {same} identical, {different} different, "
              f"{lines} differing lines", flush=True)
        failed |= different > 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
