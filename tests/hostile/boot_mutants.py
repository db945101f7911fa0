"""Seeded mutants of Multiboot, bzImage and PVH guest images, booted with ``x86vm run``.

    python3 tests/hostile/boot_mutants.py [COUNT] [--seed N] [--backend emu|kvm]
                                          [--formats multiboot,bzimage,pvh] [--timeout S]
                                          [--reasons]

Each seed is a guest built at run time with gcc (tests/guests: multiboot.elf, long64.bzImage,
long64_pvh.elf); each mutant changes one to three of its boot-protocol fields (the Multiboot
header, the bzImage setup header, ELF and program headers, the PVH note), flips bytes,
truncates or extends the file; it is booted with a random guest RAM size (2 MiB to 128 MiB),
often a long command line and an initrd of up to 3 MiB, sometimes with ``--loader`` forced.
Every mutant is run with ``x86vm run --backend B --timeout S`` in a worker process (in-process
``main``, so that thousands of runs fit in minutes); the parent watches the worker, and a
mutant whose run does not end within ``S + 5`` seconds is a hang (the worker is killed and
restarted after it).
A run must end with either

* a rejection: status 2 and exactly one line on standard error, ``x86vm: error: ...``; or
* a run: the guest's status (0, a debug-exit status, 124 for the timeout, 126 when the vCPU
  cannot go on), with no traceback.

Prints the tallies and each failure (mutant number, status, standard error).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = {"multiboot": "multiboot.elf", "bzimage": "long64.bzImage", "pvh": "long64_pvh.elf"}
INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               0x100000, 0x1000000, (1 << 63) - 1, (1 << 64) - 1)
MULTIBOOT_MAGIC = 0x1BADB002
# bzImage setup header (Documentation/arch/x86/boot.rst): (offset, size) of every field
SETUP_HEADER = ((0x1F1, 1), (0x1F2, 2), (0x1F4, 4), (0x1F8, 2), (0x1FA, 2), (0x1FC, 2),
                (0x1FE, 2), (0x200, 2), (0x202, 4), (0x206, 2), (0x208, 4), (0x20C, 2),
                (0x20E, 2), (0x210, 1), (0x211, 1), (0x212, 2), (0x214, 4), (0x218, 4),
                (0x21C, 4), (0x220, 4), (0x224, 2), (0x226, 1), (0x227, 1), (0x228, 4),
                (0x22C, 4), (0x230, 4), (0x234, 1), (0x235, 1), (0x236, 2), (0x238, 4),
                (0x23C, 4), (0x240, 8), (0x248, 4), (0x24C, 4), (0x250, 8), (0x258, 8),
                (0x260, 4), (0x264, 4))


def build_seeds(workdir: Path) -> dict[str, bytes]:
    """The unmutated guests, built with tests/guests/build.py."""
    sys.path.insert(0, str(ROOT / "tests"))
    from guests.build import build

    return {kind: build(name, workdir).read_bytes() for kind, name in SEEDS.items()}


def _elf_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of ELF header and program header fields, and of PT_NOTE contents."""
    if data[:4] != b"\x7fELF":
        return []
    is64 = data[4] == 2
    if is64:
        ehdr = ((16, 2), (18, 2), (20, 4), (24, 8), (32, 8), (40, 8), (48, 4), (52, 2),
                (54, 2), (56, 2), (58, 2), (60, 2), (62, 2))
        phoff, = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        ph = ((0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 8), (48, 8))
        note_at = (8, 32)  # p_offset, p_filesz
    else:
        ehdr = ((16, 2), (18, 2), (20, 4), (24, 4), (28, 4), (32, 4), (36, 4), (40, 2),
                (42, 2), (44, 2), (46, 2), (48, 2), (50, 2))
        phoff, = struct.unpack_from("<I", data, 28)
        phentsize, phnum = struct.unpack_from("<HH", data, 42)
        ph = tuple((i * 4, 4) for i in range(8))
        note_at = (4, 16)
    fields = list(ehdr)
    for i in range(phnum):
        base = phoff + i * phentsize
        fields += [(base + o, n) for o, n in ph]
        if base + phentsize <= len(data) and struct.unpack_from("<I", data, base)[0] == 4:
            fmt = "<Q" if is64 else "<I"
            offset = struct.unpack_from(fmt, data, base + note_at[0])[0]
            size = struct.unpack_from(fmt, data, base + note_at[1])[0]
            fields += [(offset + k, 4) for k in range(0, min(size, 256), 4)]
    return [(o, n) for o, n in fields if o + n <= len(data)]


def _multiboot_header(data: bytes) -> int | None:
    for off in range(0, min(len(data), 8192) - 11, 4):
        magic, flags, checksum = struct.unpack_from("<III", data, off)
        if magic == MULTIBOOT_MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            return off
    return None


def fields_of(kind: str, data: bytes) -> list[tuple[int, int]]:
    fields = _elf_fields(data)
    if kind == "bzimage":
        fields += [f for f in SETUP_HEADER if f[0] + f[1] <= len(data)]
    if kind == "multiboot":
        at = _multiboot_header(data)
        if at is not None:
            fields += [(at + 4 * k, 4) for k in range(12)]
    return fields


def mutate(kind: str, data: bytes, rng: random.Random) -> bytes:
    """One to three mutations of ``data`` (a ``kind`` image); the Multiboot checksum is
    usually kept valid, so that the loader behind it is reached."""
    out = bytearray(data)
    fields = fields_of(kind, data)
    for _ in range(rng.randint(1, 3)):
        how = rng.random()
        if how < 0.65 and fields:
            off, size = rng.choice(fields)
            old = int.from_bytes(out[off:off + size], "little")
            pick = rng.random()
            if pick < 0.4:
                value = rng.choice(INTERESTING)
            elif pick < 0.7:
                value = old + rng.choice((-1, 1, -8, 8, 0x1000, -0x1000, len(data), 1 << 20))
            else:
                value = rng.getrandbits(8 * size)
            out[off:off + size] = (value % (1 << 8 * size)).to_bytes(size, "little")
        elif how < 0.85:
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(len(out))] = rng.randrange(256)
        elif how < 0.95:
            del out[rng.randrange(1, len(out)):]
        else:
            out += bytes(rng.randrange(1, 1 << 16))
    if kind == "multiboot" and rng.random() < 0.8:
        at = _multiboot_header(data)
        if at is not None and at + 12 <= len(out):
            magic, flags = struct.unpack_from("<II", out, at)
            if magic == MULTIBOOT_MAGIC:
                struct.pack_into("<I", out, at + 8, (-(magic + flags)) & 0xFFFFFFFF)
    return bytes(out)


MEMORY_SIZES = ("32M", "32M", "32M", "2M", "8M", "17M", "128M")


def boot_options(rng: random.Random, initrd_path: str) -> list[str]:
    """Guest RAM, a command line and an initrd (the loaders place them next to the image):
    mostly the defaults a kernel fits in, sometimes small RAM, long lines, big initrds."""
    options = ["-m", rng.choice(MEMORY_SIZES)]
    if rng.random() < 0.15:  # a loader chosen by hand, often not the image's
        options += ["--loader", rng.choice(("flat", "multiboot", "linux", "pvh"))]
    if rng.random() < 0.3:
        options += ["--cmdline", "x" * rng.choice((1, 100, 2047, 2048, 4096, 70000))]
    if rng.random() < 0.3:
        Path(initrd_path).write_bytes(bytes(rng.choice((1, 4096, 1 << 20, 3 << 20))))
        options += ["--initrd", initrd_path]
    return options


def judge(status: int, stderr: str) -> str | None:
    """What is wrong with a run's outcome, or None."""
    if "Traceback" in stderr:
        return "traceback"
    lines = [line for line in stderr.splitlines() if line.strip()]
    if status == 2:
        if len(lines) != 1 or not lines[0].startswith("x86vm: error: "):
            return "rejection is not one 'x86vm: error:' line"
        return None
    if status in (0, 124, 126) or (status & 1 and 0 < status < 256):
        return None
    return f"unexpected status {status}"


def worker(args: argparse.Namespace) -> int:
    """Run mutants ``args.start``.. of each format, one JSON line per finished run."""
    sys.path.insert(0, str(ROOT / "src"))
    from x86vm.cli import main

    work = Path(args.workdir)
    seeds = {kind: (work / f"seed-{kind}").read_bytes() for kind in args.formats.split(",")}
    path = str(work / f"mutant-{os.getpid()}")
    report = open(args.report, "a", buffering=1)  # noqa: SIM115 - lives as long as the worker
    for index in range(args.start, args.count * len(seeds)):
        kind = sorted(seeds)[index % len(seeds)]
        rng = random.Random(f"{args.seed}:{index}")
        Path(path).write_bytes(mutate(kind, seeds[kind], rng))
        extra = boot_options(rng, path + ".initrd")
        report.write(json.dumps({"start": index}) + "\n")
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                status = main(["run", "--backend", args.backend, "--timeout", args.timeout,
                               "--serial", "none", *extra, path])
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 2
            except BaseException as exc:  # noqa: BLE001 - exactly what must never happen
                status = -1
                err.write(f"Traceback (in-process): {type(exc).__name__}: {exc}\n")
        report.write(json.dumps({"done": index, "kind": kind, "status": status,
                                 "stderr": err.getvalue()[-2000:]}) + "\n")
    return 0


def compare(count: int, seed: int = 1, backend: str = "emu", timeout: str = "0.05",
            formats: str = "bzimage,multiboot,pvh", out=sys.stdout,
            show_reasons: bool = False) -> dict[str, int]:
    """Run ``count`` mutants of each format; return the tallies, print the failures."""
    kinds = formats.split(",")
    tally = {"mutants": 0, "rejected (one line, status 2)": 0, "ran": 0, "hangs": 0,
             "failures": 0}
    statuses: dict[str, int] = {}
    reasons: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind, data in build_seeds(work).items():
            if kind in kinds:
                (work / f"seed-{kind}").write_bytes(data)
        report = work / "report.jsonl"
        total, start = count * len(kinds), 0
        while start < total:
            report.write_text("")
            proc = subprocess.Popen([sys.executable, __file__, "--worker", "--start", str(start),
                                     "--workdir", str(work), "--report", str(report),
                                     "--seed", str(seed), "--backend", backend,
                                     "--timeout", timeout, "--formats", ",".join(sorted(kinds)),
                                     str(count)], stdin=subprocess.DEVNULL)
            started, current = None, None
            seen = 0
            while True:
                time.sleep(0.2)
                lines = report.read_text().splitlines()
                for line in lines[seen:]:
                    record = json.loads(line)
                    if "start" in record:
                        current, started = record["start"], time.monotonic()
                        continue
                    current = None
                    tally["mutants"] += 1
                    problem = judge(record["status"], record["stderr"])
                    if problem is not None:
                        tally["failures"] += 1
                        print(f"mutant {record['done']} ({record['kind']}): {problem}: status "
                              f"{record['status']}: {record['stderr'][-600:]!r}", file=out)
                    elif record["status"] == 2:
                        tally["rejected (one line, status 2)"] += 1
                        reason = _reason(record["stderr"])
                        reasons[reason] = reasons.get(reason, 0) + 1
                    else:
                        tally["ran"] += 1
                        key = f"ran, status {record['status']}"
                        statuses[key] = statuses.get(key, 0) + 1
                seen = len(lines)
                if proc.poll() is not None:
                    start = total if current is None else current + 1
                    if current is not None:  # the worker died inside a run
                        tally["mutants"] += 1
                        tally["failures"] += 1
                        print(f"mutant {current}: the worker died ({proc.returncode})", file=out)
                    break
                if current is not None and time.monotonic() - started > float(timeout) + 5:
                    proc.kill()
                    proc.wait()
                    tally["mutants"] += 1
                    tally["hangs"] += 1
                    print(f"mutant {current}: hang (no end after {timeout} + 5 s)", file=out)
                    start = current + 1
                    break
    tally.update(sorted(statuses.items()))
    if show_reasons:
        tally.update({f"  {k}": v for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])})
    return tally


def _reason(stderr: str) -> str:
    """A rejection's line with its numbers and paths blanked, to count them by kind."""
    line = stderr.strip().splitlines()[0].removeprefix("x86vm: error: ")
    line = re.sub(r"/\S+", "PATH", line)
    return re.sub(r"0x[0-9a-f]+|\d+", "N", line)[:90]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=10_000,
                        help="mutants of each format")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", default="emu", choices=("emu", "kvm"))
    parser.add_argument("--timeout", default="0.05", help="x86vm run --timeout (seconds)")
    parser.add_argument("--formats", default="bzimage,multiboot,pvh")
    parser.add_argument("--reasons", action="store_true", help="count rejections by message")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    tally = compare(args.count, args.seed, args.backend, args.timeout, args.formats,
                    show_reasons=args.reasons)
    for key, value in tally.items():
        print(f"{key:>30}: {value}")
    return 1 if tally["failures"] or tally["hangs"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
