"""The known differences from objdump, checked in: tests/oracle/known_mismatches.jsonl.

Each line is one case -- the suite (which comparison), mode, syntax, the instruction's bytes,
objdump's record and x86vm's -- as a JSON object. A comparison asserts that what it finds
*equals* its slice of the list: a new mismatch fails even when an old one has disappeared, and
a fixed one fails until its line is removed. Failure messages print the lines to add or
remove; ``python3 tests/tools/known_mismatches.py --update`` rewrites the file from a fresh
run of every listed comparison.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

KNOWN_FILE = Path(__file__).with_name("known_mismatches.jsonl")
#: set by tests/tools/known_mismatches.py: record what is found there instead of asserting
RECORD_ENV = "X86VM_KNOWN_RECORD"
FIELDS = ("suite", "mode", "syntax", "bytes", "objdump", "x86vm")
Case = tuple[str, int, str, str, str, str]


def load(path: Path = KNOWN_FILE) -> list[Case]:
    cases = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if sorted(record) != sorted(FIELDS):
            raise ValueError(f"{path}:{number}: fields must be {', '.join(FIELDS)}")
        cases.append(tuple(record[f] for f in FIELDS))
    return cases


def line(case: Case) -> str:
    return json.dumps(dict(zip(FIELDS, case, strict=True)), ensure_ascii=False)


def known(suite: str, mode: int, syntax: str) -> set[Case]:
    return {c for c in load() if c[:3] == (suite, mode, syntax)}


def cases(suite: str, mode: int, syntax: str,
          mismatches: Iterable[tuple[str, str, str]]) -> set[Case]:
    return {(suite, mode, syntax, *m) for m in mismatches}


def assert_known(suite: str, mode: int, syntax: str,
                 mismatches: Iterable[tuple[str, str, str]],
                 sample: Iterable[str] | None = None) -> None:
    """The mismatches found equal the known ones for (suite, mode, syntax), exactly; with
    ``sample`` (the hex strings compared: a subset of the suite), the known ones whose bytes
    occur in the sample."""
    found = cases(suite, mode, syntax, mismatches)
    if sample is not None:
        compared = "|".join(sample)
        _report(found, {c for c in known(suite, mode, syntax) if c[3] in compared})
        return
    if os.environ.get(RECORD_ENV):
        with open(os.environ[RECORD_ENV], "a", encoding="utf-8") as out:
            out.write(json.dumps({"slice": [suite, mode, syntax]}) + "\n")
            out.writelines(line(c) + "\n" for c in sorted(found))
        return
    _report(found, known(suite, mode, syntax))


def _report(found: set[Case], expected: set[Case]) -> None:
    new, fixed = sorted(found - expected), sorted(expected - found)
    message = []
    if new:
        message.append(f"{len(new)} new mismatch(es) against objdump (fix them; list them in "
                       f"{KNOWN_FILE.name} only if x86vm is knowingly different):")
        message += [line(c) for c in new]
    if fixed:
        message.append(f"{len(fixed)} known mismatch(es) no longer seen: remove from "
                       f"{KNOWN_FILE.name}:")
        message += [line(c) for c in fixed]
    assert not message, "\n".join(message)
