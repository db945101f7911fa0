"""Run GNU objdump 2.40 once per file and option set, cache its listing, and parse it.

objdump is the oracle for every expected text: nothing here is typed in by hand. Outputs are
cached under ``$X86VM_ORACLE_CACHE`` (default: ``<tmp>/x86vm-objdump-cache``), keyed by
objdump's version line, the arguments and the input file's size and mtime, so repeated test
runs do not re-run objdump.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support.oracles import objdump_version_line

OBJDUMP = shutil.which("objdump")
CACHE_DIR = Path(os.environ.get("X86VM_ORACLE_CACHE")
                 or Path(tempfile.gettempdir()) / "x86vm-objdump-cache")


def objdump_version() -> str | None:
    """The first line of ``objdump --version`` (None without objdump)."""
    return objdump_version_line()


def cache_key_text(args: list[str], path: str) -> str:
    """What a cached listing depends on: objdump's version, the arguments and the file."""
    stat = os.stat(path)
    return "\0".join([objdump_version_line() or "no objdump", *args, os.path.abspath(path),
                      str(stat.st_size), str(stat.st_mtime_ns)])


def run_objdump(args: list[str], path: str | os.PathLike, cache: bool = True) -> str:
    """objdump's stdout for ``objdump ARGS PATH`` (cached); raises if objdump fails."""
    if OBJDUMP is None:
        raise RuntimeError("objdump is not installed")
    path = str(path)
    key = hashlib.sha256(cache_key_text(args, path).encode()).hexdigest()[:32]
    cached = CACHE_DIR / f"{key}.txt"
    if cache and cached.exists():
        return cached.read_text(encoding="utf-8", errors="surrogateescape")
    proc = subprocess.run([OBJDUMP, *args, path], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"objdump {' '.join(args)} {path} failed: {proc.stderr[:200]!r}")
    text = proc.stdout.decode("utf-8", "surrogateescape")
    if cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
        tmp.replace(cached)
    return text


@dataclass(frozen=True, slots=True)
class InsnLine:
    """One instruction of a ``-w`` listing: its address, raw bytes (hex) and text.

    ``length`` counts bytes objdump could not show too: an instruction that runs past the next
    symbol (``-D``) prints one blank per byte beyond it instead of ``%02x ``."""

    address: int
    hex_bytes: str
    text: str
    length: int


def _length_from_column(column: str, shown: int, per_line: int = 7) -> int:
    """Instruction length from the width of a ``-w`` raw-bytes column with ``shown`` bytes."""
    for hidden in range(16):
        total = shown + hidden
        if 3 * shown + hidden + 3 * max(0, per_line - total) == len(column):
            return total
    return shown


def parse_wide_listing(listing: str) -> dict[int, list[InsnLine]]:
    """Instruction lines of an ``objdump -d -w`` listing by address (data lines skipped); an
    address can hold several (sections of a relocatable object all start at 0)."""
    out: dict[int, list[InsnLine]] = {}
    for line in listing.split("\n"):
        head, sep, rest = line.partition(":\t")
        if not sep or not head or head[0] not in " 0123456789abcdef":
            continue
        raw, tab, text = rest.partition("\t")
        if not tab:
            continue
        try:
            address = int(head, 16)
        except ValueError:
            continue
        hex_bytes = raw.replace(" ", "")
        length = _length_from_column(raw, len(hex_bytes) // 2)
        out.setdefault(address, []).append(InsnLine(address, hex_bytes, text, length))
    return out


# The address operands objdump renders with print_address_func: a branch target or a
# ``# addr <sym>`` comment, "hex <symbol...>" (with symbols) or "0xhex" (without).
SYMBOLIC_ADDRESS = re.compile(r"(?<![\w$])([0-9a-f]+) (<[^>]*>)")


class OracleFormatter:
    """A stand-in formatter for layout tests: lengths and texts taken from objdump's own ``-w``
    listing of the same file, looked up by address. Test-only; never product code.

    It also checks the listing's ``print_address`` against every ``ADDR <sym+0xoff>`` objdump
    printed inside an instruction, recording disagreements in ``address_mismatches``."""

    def __init__(self, records: dict[int, list[InsnLine]]) -> None:
        self.records = records
        self.misses: list[int] = []
        self.address_checks = 0
        self.address_mismatches: list[tuple[int, str, str]] = []

    def __call__(self, data: bytes, offset: int, address: int, print_address) -> tuple[int, str]:
        record = None
        for candidate in self.records.get(address, ()):
            got = data[offset:offset + len(candidate.hex_bytes) // 2].hex()
            if candidate.hex_bytes == got or (record is None and got.startswith(
                    candidate.hex_bytes[:len(got)])):
                record = candidate
                if candidate.hex_bytes == got:
                    break
        if record is None:
            self.misses.append(address)
            return 1, "<no oracle record>"
        for match in SYMBOLIC_ADDRESS.finditer(record.text):
            expected = match.group(0)
            got = print_address(int(match.group(1), 16))
            self.address_checks += 1
            if got != expected:
                self.address_mismatches.append((address, expected, got))
        return record.length, record.text
