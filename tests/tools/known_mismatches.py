"""Rewrite tests/oracle/known_mismatches.jsonl from a fresh run of the comparisons that use it.

    python3 tests/tools/known_mismatches.py [--update] [PYTEST ARGS...]

Runs pytest (default: the files that call ``assert_known``; ``-m slow`` adds the long ones)
with X86VM_KNOWN_RECORD set, so each comparison records what it finds instead of asserting.
Without ``--update`` it prints the lines that would be added and removed; with it, it writes
the file: the slices run are replaced, the others kept. Review the diff: a line there is a
claim that x86vm knowingly differs from objdump.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from oracle.known import KNOWN_FILE, RECORD_ENV, line, load  # noqa: E402

DEFAULT_TESTS = ["tests/test_isa_objdump.py", "tests/test_isa_sweep.py",
                 "tests/test_isa_coverage.py", "tests/test_isa_prefixes.py",
                 "tests/test_disasm_listing.py"]


def record(pytest_args: list[str]) -> tuple[set[tuple], list]:
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as tmp:
        env = dict(os.environ, **{RECORD_ENV: tmp.name})
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        *pytest_args], cwd=TESTS.parent, env=env, check=False)
        slices, found = set(), []
        for text in tmp.read().splitlines():
            obj = json.loads(text)
            if "slice" in obj:
                slices.add(tuple(obj["slice"]))
            else:
                found.append(tuple(obj[k] for k in ("suite", "mode", "syntax", "bytes",
                                                    "objdump", "x86vm")))
    return slices, found


def main() -> int:
    args = sys.argv[1:]
    update = "--update" in args
    args = [a for a in args if a != "--update"] or DEFAULT_TESTS
    slices, found = record(args)
    old = load()
    kept = [c for c in old if c[:3] not in slices]
    new = sorted(set(kept) | set(found))
    for case in sorted(set(new) - set(old)):
        print("+", line(case))
    for case in sorted(set(old) - set(new)):
        print("-", line(case))
    print(f"{len(slices)} slices recorded; {len(old)} -> {len(new)} known mismatches")
    if update:
        KNOWN_FILE.write_text("".join(line(c) + "\n" for c in new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
