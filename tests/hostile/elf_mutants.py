"""Seeded mutants of real ELF files, listed by ``x86vm disasm -d`` and by objdump 2.40.

    python3 tests/hostile/elf_mutants.py [COUNT] [--seed N] [--show K] [--kind KIND] [-D]

Each mutant is a small ELF file (built at run time with gcc) with a few header fields or bytes
changed: the ELF header, program and section headers, the symbol/string/relocation/version
tables, bytes anywhere, a truncation (``--kind`` keeps to one sort). x86vm must never raise a
traceback or hang, and must give each mutant objdump's exit status and objdump's lines on
standard error (compared without the program's name). Prints the counts and the
disagreements.
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
LIBRARY = """
int counter;
int api(int x) { return x * 3 + counter; }
int api2(int x) { return api(x) + 1; }
"""
VERSIONS = "VERS_1 { global: api; local: *; }; VERS_2 { global: api2; } VERS_1;\n"
TEMPLATES = """
template <typename T> T twice(T v) { return v + v; }
inline int shared_inline(int a) { static int n; return a + ++n; }
int use(int a) { return twice(a) + twice<long>(a) + shared_inline(a); }
"""
# (name, compiler, source, flags): an executable, a PIE, a relocatable object, 32-bit when
# multilib is here; a shared library with version definitions (.gnu.version_d); C++ objects
# with COMDAT section groups (SHT_GROUP), 64- and 32-bit; an object with compressed DWARF
VARIANTS = (("exec", "gcc", "seed.c", ["-O2", "-no-pie", "-fno-pie"]),
            ("pie", "gcc", "seed.c", ["-O2", "-fpie", "-pie"]),
            ("object", "gcc", "seed.c", ["-O2", "-c"]),
            ("exec32", "gcc", "seed.c", ["-O2", "-m32", "-no-pie", "-fno-pie"]),
            ("library", "gcc", "lib.c", ["-O2", "-shared", "-fPIC",
                                         "-Wl,--version-script=versions.map"]),
            ("groups", "g++", "groups.cpp", ["-O2", "-c"]),
            ("groups32", "g++", "groups.cpp", ["-O2", "-m32", "-c"]),
            ("debug", "gcc", "seed.c", ["-O2", "-g", "-gz", "-ffunction-sections", "-c"]))


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
    """The unmutated ELF files (those gcc and g++ can build here)."""
    for name, text in (("seed.c", SOURCE), ("lib.c", LIBRARY), ("versions.map", VERSIONS),
                       ("groups.cpp", TEMPLATES)):
        (workdir / name).write_text(text)
    seeds = {}
    for name, compiler, source, flags in VARIANTS:
        out = workdir / name
        # the same bytes whatever the directory (DWARF names it otherwise)
        done = subprocess.run([compiler, *flags, f"-ffile-prefix-map={workdir}=.", "-o",
                               str(out), source], capture_output=True, cwd=workdir)
        if done.returncode == 0:
            seeds[name] = out.read_bytes()
    return seeds


def _fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the header fields worth mutating: ELF header, section and program
    headers (each field of each entry)."""
    groups = _field_groups(data)
    return groups["ehdr"] + groups["shdr"] + groups["phdr"]


def _field_groups(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """The mutable places by kind: "ehdr", "shdr" and "phdr" fields, and "tables" (each
    32-bit word of the symbol, string, relocation, version, note, group and dynamic
    tables)."""
    is64 = data[4] == 2
    ehdr = [(16, 2), (18, 2), (20, 4), (24, 8), (32, 8), (40, 8), (48, 4), (52, 2), (54, 2),
            (56, 2), (58, 2), (60, 2), (62, 2)] if is64 else \
        [(16, 2), (18, 2), (20, 4), (24, 4), (28, 4), (32, 4), (36, 4), (40, 2), (42, 2),
         (44, 2), (46, 2), (48, 2), (50, 2)]
    if is64:
        shoff, = struct.unpack_from("<Q", data, 40)
        phoff, = struct.unpack_from("<Q", data, 32)
        shentsize, shnum = struct.unpack_from("<HH", data, 58)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        sh = ((0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8),
              (56, 8))
        ph = ((0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 8), (48, 8))
        shdr_fmt = "<IIQQQQIIQQ"
    else:
        shoff, = struct.unpack_from("<I", data, 32)
        phoff, = struct.unpack_from("<I", data, 28)
        shentsize, shnum = struct.unpack_from("<HH", data, 46)
        phentsize, phnum = struct.unpack_from("<HH", data, 42)
        sh = tuple((i * 4, 4) for i in range(10))
        ph = tuple((i * 4, 4) for i in range(8))
        shdr_fmt = "<IIIIIIIIII"
    shdr = [(shoff + i * shentsize + o, n) for i in range(shnum) for o, n in sh]
    phdr = [(phoff + i * phentsize + o, n) for i in range(phnum) for o, n in ph]
    tables = []
    for i in range(shnum):
        at = shoff + i * shentsize
        if at + struct.calcsize(shdr_fmt) > len(data):
            continue
        _name, sh_type, _f, _a, offset, size, *_rest = struct.unpack_from(shdr_fmt, data, at)
        if sh_type in TABLE_TYPES:
            tables += [(offset + k, 4) for k in range(0, size - 3, 4)]
    groups = {"ehdr": ehdr, "shdr": shdr, "phdr": phdr, "tables": tables}
    return {k: [(o, n) for o, n in v if o + n <= len(data)] for k, v in groups.items()}


# SYMTAB, STRTAB, RELA, HASH, DYNAMIC, NOTE, REL, DYNSYM, GROUP, GNU_HASH, verdef/need/sym
TABLE_TYPES = {2, 3, 4, 5, 6, 7, 9, 11, 17, 0x6FFFFFF6, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF}
KINDS = ("any", "ehdr", "shdr", "phdr", "tables", "bytes", "truncate")


INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               (1 << 63) - 1, (1 << 64) - 1)


def mutate(data: bytes, rng: random.Random, header_only: bool = False,
           kind: str = "any") -> bytes:
    """One to three mutations: a header field set to a boundary or random value, nudged,
    bytes flipped anywhere, or the file truncated. ``kind`` (one of :data:`KINDS`) keeps to
    one sort: "ehdr" (the ELF header fields and e_ident bytes: the checks of BFD's
    elf_object_p before it reads a section; ``header_only`` says the same), "shdr", "phdr",
    "tables" (fields), "bytes" (flips anywhere), "truncate"."""
    kind = "ehdr" if header_only else kind
    out = bytearray(data)
    groups = _field_groups(data)
    groups["ehdr"] = groups["ehdr"] + [(i, 1) for i in range(4, 16)]
    fields = _fields(data) if kind == "any" else groups.get(kind, [])
    for _ in range(rng.randint(1, 3)):
        how = {"any": rng.random(), "bytes": 0.7, "truncate": 0.9}.get(kind, 0.0)
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
        elif len(out) > 17:
            del out[rng.randrange(16, len(out)):]
    return bytes(out)


def run_x86vm(path: str, option: str = "-d") -> Verdict:
    """``x86vm disasm -d PATH`` (or ``option``) in-process (standard streams captured)."""
    from x86vm.cli import main

    out, err = io.StringIO(), io.StringIO()
    traceback = False
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(["disasm", option, path])
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - exactly what must never happen
            import traceback as tb

            status, traceback = -1, True
            err.write("Traceback: " + tb.format_exc().replace("\n", " | ")[-600:] + "\n")
    text = err.getvalue()
    return Verdict(status, traceback or "Traceback" in text, error_lines(text, "x86vm"))


def run_objdump(path: str, option: str = "-d") -> Verdict:
    done = subprocess.run(["objdump", option, path], capture_output=True, timeout=60,
                          text=True, errors="surrogateescape")
    return Verdict(done.returncode, False, error_lines(done.stderr, "objdump"))


def compare(count: int, seed: int = 1, show: int = 10, out=sys.stdout,
            header_only: bool = False, kind: str = "any", option: str = "-d") -> dict[str, int]:
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
            data = mutate(seeds[name], rng, header_only, kind)
            Path(path).write_bytes(data)
            ours, theirs = run_x86vm(path, option), run_objdump(path, option)
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
    parser.add_argument("--kind", default="any", choices=KINDS,
                        help="one sort of mutation (default: any of them)")
    parser.add_argument("-D", dest="option", action="store_const", const="-D", default="-d",
                        help="list with -D (every section) instead of -d")
    args = parser.parse_args(argv)
    tally = compare(args.count, args.seed, args.show, header_only=args.header_only,
                    kind=args.kind, option=args.option)
    for key, value in tally.items():
        print(f"{key:>34}: {value}")
    bad = tally["tracebacks"] + tally["x86vm accepts, objdump refuses"] + \
        tally["x86vm refuses, objdump accepts"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    raise SystemExit(main(sys.argv[1:]))
