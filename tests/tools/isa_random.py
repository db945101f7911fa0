"""Random bytes listed contiguously, as ``objdump -D -b binary`` lists a raw file, against x86vm.

One short string at a time (the corpus's older random part) only ever compares the first
instruction after a symbol; a long random file is a linear sweep, where an instruction starts
wherever the previous one ended -- after a prefix objdump printed alone, a (bad) of any
length, a truncated VEX.  Each chunk is a file of random bytes; objdump (the oracle) lists it
with ``-D -b binary -m i386[:x86-64|i8086] -w``, x86vm with `decode_all` and the formatters,
and every line's bytes and text are compared.

  python3 tests/tools/isa_random.py [--mode 64] [--chunks 4] [--chunk-bytes 262144] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2]
                                                              / "src")]

from oracle.objdump import parse_wide_listing, run_objdump  # noqa: E402
from x86vm.disasm.att import format_att  # noqa: E402
from x86vm.disasm.intel import format_intel  # noqa: E402
from x86vm.isa import decode_all  # noqa: E402

ARCH = {16: "i8086", 32: "i386", 64: "i386:x86-64"}
SYNTAXES = ("att", "intel")
MAX_EXAMPLES = 20


@dataclass
class RandomTally:
    """Lines compared, lines whose bytes differ (instruction boundaries) or whose text does."""

    instructions: int = 0
    length_mismatches: int = 0
    text_mismatches: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, other: RandomTally) -> None:
        self.instructions += other.instructions
        self.length_mismatches += other.length_mismatches
        self.text_mismatches += other.text_mismatches
        self.examples.extend(other.examples[:MAX_EXAMPLES - len(self.examples)])

    @property
    def ok(self) -> bool:
        return not (self.length_mismatches or self.text_mismatches)

    def summary(self) -> str:
        return (f"{self.instructions} instructions, {self.length_mismatches} length mismatches, "
                f"{self.text_mismatches} text mismatches")


def objdump_records(data: bytes, mode: int, syntax: str) -> dict:
    """objdump's listing of `data` as a raw binary at address 0, by address."""
    with tempfile.TemporaryDirectory(prefix="x86vm-random-") as tmp:
        path = os.path.join(tmp, "random.bin")
        with open(path, "wb") as f:
            f.write(data)
        args = ["-D", "-b", "binary", "-m", ARCH[mode], "-w"]
        if syntax == "intel":
            args += ["-M", "intel"]
        return parse_wide_listing(run_objdump(args, path, cache=False))


def compare_chunk(data: bytes, mode: int, syntaxes=SYNTAXES) -> dict[str, RandomTally]:
    """Every instruction of objdump's contiguous listing of `data` against x86vm's, per syntax
    (x86vm decodes once; a line is compared by its address, bytes and text)."""
    formats = {"att": format_att, "intel": format_intel}
    expected = {s: objdump_records(data, mode, s) for s in syntaxes}
    tallies = {s: RandomTally() for s in syntaxes}
    ours = {}
    for insn in decode_all(data, address=0, mode=mode):
        ours[insn.address] = insn
    for syntax in syntaxes:
        tally = tallies[syntax]
        fmt = formats[syntax]
        for address, lines in expected[syntax].items():
            ref = lines[0]
            tally.instructions += 1
            insn = ours.get(address)
            if insn is None or insn.length != ref.length or \
                    insn.bytes.hex() != ref.hex_bytes:
                tally.length_mismatches += 1
                if len(tally.examples) < MAX_EXAMPLES:
                    got = "none" if insn is None else f"{insn.bytes.hex()} {fmt(insn)!r}"
                    tally.examples.append(f"{mode}-bit {syntax} {address:#x}: length: objdump "
                                          f"{ref.hex_bytes} {ref.text!r}, x86vm {got}; "
                                          f"bytes {data[address:address + 16].hex()}")
                continue
            text = fmt(insn)
            if text != ref.text:
                tally.text_mismatches += 1
                if len(tally.examples) < MAX_EXAMPLES:
                    tally.examples.append(f"{mode}-bit {syntax} {address:#x}: "
                                          f"{ref.hex_bytes}: objdump {ref.text!r}, "
                                          f"x86vm {text!r}")
    return tallies


def _chunk_job(job: tuple) -> dict[str, RandomTally]:
    seed, mode, index, chunk_bytes, syntaxes = job
    rng = random.Random(f"{seed}-{mode}-{index}")
    return compare_chunk(rng.randbytes(chunk_bytes), mode, syntaxes)


def run(modes, chunks: int, chunk_bytes: int, seed: int, syntaxes=SYNTAXES, jobs: int = 1,
        progress=None) -> dict[str, RandomTally]:
    """Compare `chunks` random files of `chunk_bytes` per mode; tallies by "MODE-bit SYNTAX".
    Chunk i of a mode is the same bytes whatever `jobs` (each is seeded by its index)."""
    from concurrent.futures import ProcessPoolExecutor

    totals = {f"{m}-bit {s}": RandomTally() for m in modes for s in syntaxes}
    work = [(seed, m, i, chunk_bytes, tuple(syntaxes)) for m in modes for i in range(chunks)]
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    results = pool.map(_chunk_job, work) if pool else map(_chunk_job, work)
    for n, ((_, mode, _i, _, _), tallies) in enumerate(zip(work, results, strict=True), 1):
        for syntax, tally in tallies.items():
            totals[f"{mode}-bit {syntax}"].add(tally)
        if progress:
            progress(n, len(work), mode, totals)
    if pool:
        pool.shutdown()
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", type=int, action="append", choices=[16, 32, 64])
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--chunk-bytes", type=int, default=256 * 1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    totals = run(args.mode or [16, 32, 64], args.chunks, args.chunk_bytes, args.seed,
                 jobs=args.jobs)
    for key, tally in totals.items():
        print(f"{key:14} {tally.summary()}")
        for example in tally.examples:
            print(f"    {example}")
    return 0 if all(t.ok for t in totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
