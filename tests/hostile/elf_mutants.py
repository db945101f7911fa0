"""Seeded mutants of real ELF files, listed by ``x86vm disasm -d`` and by objdump 2.40.

    python3 tests/hostile/elf_mutants.py [COUNT] [--seed N] [--show K]

Each mutant is a small ELF file (built at run time with gcc) with a few header fields or bytes
changed: the ELF header, program and section headers, string tables, a truncation. x86vm
must never raise a traceback or hang, and must accept (list, status 0) or refuse (status 1)
exactly the mutants objdump accepts or refuses. Prints the counts and the disagreements.
"""

from __future__ import annotations

import contextlib
import io
import random
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOURCE = """
int counter;
static int helper(int x) { return x * 3 + counter; }
int main(int argc, char **argv) { counter = argc; return helper(argc) + (argv[0][0] == 'x'); }
"""
# (name, gcc flags): an executable, a PIE, a relocatable object, 32-bit when multilib is here
VARIANTS = (("exec", ["-O2", "-no-pie", "-fno-pie"]), ("pie", ["-O2", "-fpie", "-pie"]),
            ("object", ["-O2", "-c"]), ("exec32", ["-O2", "-m32", "-no-pie", "-fno-pie"]))


@dataclass
class Verdict:
    status: int
    traceback: bool
    lines: tuple[str, ...] = ()  # standard error, normalised by :func:`error_lines`


def error_lines(stderr: str, program: str) -> tuple[str, ...]:
    """The lines of ``stderr`` as compared: the program's name and a leading ``error: ``
    (x86vm's mark for its final error line) removed, blank lines dropped."""
    out = []
    for line in stderr.splitlines():
        if line.startswith(program + ": "):
            line = line[len(program) + 2:]
        if line.startswith("error: "):
            line = line[len("error: "):]
        if line.strip():
            out.append(line)
    return tuple(out)


def build_seeds(workdir: Path) -> dict[str, bytes]:
    """The unmutated ELF files (those gcc can build here)."""
    src = workdir / "seed.c"
    src.write_text(SOURCE)
    seeds = {}
    for name, flags in VARIANTS:
        out = workdir / name
        done = subprocess.run(["gcc", *flags, "-o", str(out), str(src)], capture_output=True)
        if done.returncode == 0:
            seeds[name] = out.read_bytes()
    return seeds


def _fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the header fields worth mutating: ELF header, section and program
    headers (each field of each entry)."""
    is64 = data[4] == 2
    fields = []
    ehdr = ((16, 2), (18, 2), (20, 4), (24, 8), (32, 8), (40, 8), (48, 4), (52, 2), (54, 2),
            (56, 2), (58, 2), (60, 2), (62, 2)) if is64 else \
        ((16, 2), (18, 2), (20, 4), (24, 4), (28, 4), (32, 4), (36, 4), (40, 2), (42, 2),
         (44, 2), (46, 2), (48, 2), (50, 2))
    fields += ehdr
    if is64:
        shoff, = struct.unpack_from("<Q", data, 40)
        phoff, = struct.unpack_from("<Q", data, 32)
        shentsize, shnum = struct.unpack_from("<HH", data, 58)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        sh = ((0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8),
              (56, 8))
        ph = ((0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 8), (48, 8))
    else:
        shoff, = struct.unpack_from("<I", data, 32)
        phoff, = struct.unpack_from("<I", data, 28)
        shentsize, shnum = struct.unpack_from("<HH", data, 46)
        phentsize, phnum = struct.unpack_from("<HH", data, 42)
        sh = tuple((i * 4, 4) for i in range(10))
        ph = tuple((i * 4, 4) for i in range(8))
    for i in range(shnum):
        fields += [(shoff + i * shentsize + o, n) for o, n in sh]
    for i in range(phnum):
        fields += [(phoff + i * phentsize + o, n) for o, n in ph]
    return [(o, n) for o, n in fields if o + n <= len(data)]


INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               (1 << 63) - 1, (1 << 64) - 1)


def mutate(data: bytes, rng: random.Random, header_only: bool = False) -> bytes:
    """One to three mutations: a header field set to a boundary or random value, nudged,
    bytes flipped anywhere, or the file truncated. ``header_only``: ELF header fields and
    e_ident bytes only (the checks of BFD's elf_object_p before it reads section contents)."""
    out = bytearray(data)
    fields = _fields(data)
    if header_only:
        fields = [f for f in fields if f[0] < (64 if data[4] == 2 else 52)]
        fields += [(i, 1) for i in range(4, 16)]
    for _ in range(rng.randint(1, 3)):
        how = 0.0 if header_only else rng.random()
        if how < 0.6 and fields:
            off, size = rng.choice(fields)
            old = int.from_bytes(out[off:off + size], "little")
            pick = rng.random()
            if pick < 0.4:
                value = rng.choice(INTERESTING)
            elif pick < 0.7:
                value = old + rng.choice((-1, 1, -8, 8, 0x1000, -0x1000, len(data)))
            else:
                value = rng.getrandbits(8 * size)
            out[off:off + size] = (value % (1 << 8 * size)).to_bytes(size, "little")
        elif how < 0.85:
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(len(out))] = rng.randrange(256)
        else:
            del out[rng.randrange(16, len(out)):]
    return bytes(out)


def run_x86vm(path: str) -> Verdict:
    """``x86vm disasm -d PATH`` in-process (standard streams captured)."""
    from x86vm.cli import main

    out, err = io.StringIO(), io.StringIO()
    traceback = False
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(["disasm", "-d", path])
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - exactly what must never happen
            status, traceback = -1, True
    text = err.getvalue()
    return Verdict(status, traceback or "Traceback" in text, error_lines(text, "x86vm"))


def run_objdump(path: str) -> Verdict:
    done = subprocess.run(["objdump", "-d", path], capture_output=True, timeout=60,
                          text=True, errors="surrogateescape")
    return Verdict(done.returncode, False, error_lines(done.stderr, "objdump"))


def compare(count: int, seed: int = 1, show: int = 10, out=sys.stdout,
            header_only: bool = False) -> dict[str, int]:
    """Run ``count`` mutants; return the tallies (and print the disagreements)."""
    rng = random.Random(seed)
    tally = {"mutants": 0, "both accept": 0, "both refuse": 0, "tracebacks": 0,
             "x86vm accepts, objdump refuses": 0, "x86vm refuses, objdump accepts": 0,
             "same status, other error lines": 0}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seeds = build_seeds(work)
        names = sorted(seeds)
        path = str(work / "mutant")
        shown = 0
        for i in range(count):
            name = names[i % len(names)]
            data = mutate(seeds[name], rng, header_only)
            Path(path).write_bytes(data)
            ours, theirs = run_x86vm(path), run_objdump(path)
            tally["mutants"] += 1
            if ours.traceback:
                tally["tracebacks"] += 1
            ok_ours, ok_theirs = ours.status == 0, theirs.status == 0
            if ok_ours:
                key = "both accept" if ok_theirs else "x86vm accepts, objdump refuses"
            else:
                key = "x86vm refuses, objdump accepts" if ok_theirs else "both refuse"
            tally[key] += 1
            other_lines = ok_ours == ok_theirs and ours.lines != theirs.lines
            tally["same status, other error lines"] += other_lines
            if (ok_ours != ok_theirs or ours.traceback or other_lines) and shown < show:
                shown += 1
                keep = work / f"disagree-{i}-{name}"
                keep.write_bytes(data)
                print(f"mutant {i} of {name}: x86vm {ours.status}, objdump {theirs.status}",
                      file=out)
                for who, lines in (("objdump", theirs.lines), ("x86vm", ours.lines)):
                    for line in lines[:6]:
                        print(f"    {who}: {line.replace(str(path), 'FILE')[:160]}", file=out)
    return tally


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=10)
    parser.add_argument("--header-only", action="store_true",
                        help="mutate the ELF header only (e_ident and its fields)")
    args = parser.parse_args(argv)
    tally = compare(args.count, args.seed, args.show, header_only=args.header_only)
    for key, value in tally.items():
        print(f"{key:>34}: {value}")
    bad = tally["tracebacks"] + tally["x86vm accepts, objdump refuses"] + \
        tally["x86vm refuses, objdump accepts"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    raise SystemExit(main(sys.argv[1:]))
