#!/usr/bin/env python3
"""Disassembler throughput on the .text of /usr/bin/python3.11, side by side in one run.

  python3 bench/disasm.py [--runs 3] [--bytes N] [--file PATH]

Figures (instructions per second; median of --runs by wall and by CPU time, and the first run):
  x86vm decode-only          x86vm.isa.decode_all over the section
  x86vm decode+format AT&T   decode_all, then format_att (no symbol lookup)
  x86vm decode+format Intel  decode_all, then format_intel (no symbol lookup)
  x86vm listing              the full `x86vm disasm -d -j .text` layout with <sym+off> lookup
  objdump -d                 wall time of `objdump -d -j .text FILE > /dev/null`
  x86vm disasm (process)     the same for `python3 -m x86vm disasm -d -j .text FILE`: a whole
                             cold process writing the full listing, like for like with objdump
  capstone Cs.disasm         mnemonic + op_str of every instruction (skipdata on)
Whole processes (``--whole [FILE...]``, default python3.11, libc and the kernel's vmlinux when
present): wall and CPU time of ``x86vm disasm -d FILE``, ``objdump -d FILE`` and a Capstone
listing script (``--capstone-listing FILE``: pyelftools for the code sections, Capstone for
``ADDR: BYTES MNEMONIC OPERANDS`` lines), each writing its whole listing to /dev/null, median
of --runs (default 5), and the ratios: x86vm's speed over the others'.

Each x86vm figure runs in a fresh process: the first run starts with cold caches (the decoder
and formatters memoise), the median includes warm runs; both are printed. Not a test: numbers
depend on the machine. Ratios (medians) against Capstone and objdump follow, then the cold
(first-run) ratios against Capstone, the honest figure for a single listing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from x86vm.disasm.elf import load_elf  # noqa: E402
from x86vm.disasm.listing import (  # noqa: E402
    ListingOptions,
    decoder_formatter,
    elf_image,
    write_listing,
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_rate(work, runs: int, cpu_clock=time.process_time
                ) -> tuple[float, float, float, float, int]:
    """(median wall rate, median CPU rate, first-run wall rate, first-run CPU rate, count).

    CPU time (``cpu_clock``: this process, or its children for objdump) is what a busy shared
    machine distorts least; wall time is what a user waits."""
    walls, cpus, count = [], [], 0
    for _ in range(runs):
        wall, cpu = time.perf_counter(), cpu_clock()
        count = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_clock() - cpu)
    return (count / statistics.median(walls), count / max(statistics.median(cpus), 1e-9),
            count / walls[0], count / max(cpus[0], 1e-9), count)


X86VM_FIGURES = ["x86vm decode-only", "x86vm decode+format AT&T", "x86vm decode+format Intel",
                 "x86vm listing (-d -j .text)"]


def bench_x86vm_fresh(args) -> dict[str, tuple[float, float, int]]:
    """Every x86vm figure measured in its own new interpreter (cold caches at run 1)."""
    out = {}
    for name in X86VM_FIGURES:
        command = [sys.executable, __file__, "--measure", name, "--file", args.file,
                   "--runs", str(args.runs)]
        if args.bytes:
            command += ["--bytes", str(args.bytes)]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        out[name] = tuple(json.loads(proc.stdout))
    return out


def bench_x86vm(data: bytes, address: int, runs: int, path: str, limit: int | None,
                only: str):
    from x86vm.disasm.att import format_att
    from x86vm.disasm.intel import format_intel
    from x86vm.isa import decode_all

    def decode_only() -> int:
        n = 0
        for _insn in decode_all(data, address=address, mode=64):
            n += 1
        return n

    def with_format(fmt):
        def work() -> int:
            n = 0
            for insn in decode_all(data, address=address, mode=64):
                fmt(insn)
                n += 1
            return n
        return work

    def listing() -> int:
        with open(path, "rb") as stream:
            image = elf_image(load_elf(path, stream))
            sink = io.StringIO()
            stop = address + limit if limit else None
            options = ListingOptions(only_sections=[".text"], stop_address=stop)
            write_listing(image, decoder_formatter(64, "att"), options, sink.write)
        return sum(1 for line in sink.getvalue().split("\n") if line.count("\t") >= 2)

    work = {
        "x86vm decode-only": decode_only,
        "x86vm decode+format AT&T": with_format(format_att),
        "x86vm decode+format Intel": with_format(format_intel),
        "x86vm listing (-d -j .text)": listing,
    }[only]
    return median_rate(work, runs)


def bench_objdump(path: str, address: int, limit: int | None, runs: int):
    stop = [f"--stop-address=0x{address + limit:x}"] if limit else []
    args = ["objdump", "-d", "-j", ".text", *stop, path]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    count = sum(1 for line in out.split("\n") if line.count("\t") >= 2)

    def work() -> int:
        with open(os.devnull, "w") as sink:
            subprocess.run(args, stdout=sink, check=True)
        return count

    return median_rate(work, runs, cpu_clock=_children_cpu)


def bench_x86vm_process(path: str, count: int, runs: int):
    """`x86vm disasm -d -j .text FILE > /dev/null` as a new process each run, timed exactly as
    objdump is (and counted as objdump's instructions: the listings are identical)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    args = [sys.executable, "-m", "x86vm", "disasm", "-d", "-j", ".text", path]

    def work() -> int:
        with open(os.devnull, "w") as sink:
            subprocess.run(args, stdout=sink, check=True, env=env)
        return count

    return median_rate(work, runs, cpu_clock=_children_cpu)


def capstone_workload(data: bytes, address: int):
    """Capstone's side of every comparison: `Cs.disasm` (skipdata on) over 64-bit code,
    forming `mnemonic + " " + op_str` of each instruction; returns a callable that counts
    them.  Raises ImportError without the capstone module."""
    import capstone

    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.skipdata = True

    def work() -> int:
        n = 0
        for insn in cs.disasm(data, address):
            _text = insn.mnemonic + " " + insn.op_str
            n += 1
        return n

    return work


def bench_capstone(data: bytes, address: int, runs: int):
    return median_rate(capstone_workload(data, address), runs)


def capstone_listing(path: str) -> int:
    """A listing script as people write it with Capstone: every executable section, one
    line per instruction (address, bytes, mnemonic, operands), to standard output."""
    import capstone
    from elftools.elf.elffile import ELFFile

    out = sys.stdout
    with open(path, "rb") as f:
        elf = ELFFile(f)
        mode = capstone.CS_MODE_64 if elf.elfclass == 64 else capstone.CS_MODE_32
        cs = capstone.Cs(capstone.CS_ARCH_X86, mode)
        cs.skipdata = True
        out.write(f"\n{path}:     file format elf{elf.elfclass}-x86-64\n\n")
        for section in elf.iter_sections():
            if not section["sh_flags"] & 0x4 or section["sh_type"] == "SHT_NOBITS":
                continue
            out.write(f"\nDisassembly of section {section.name}:\n")
            pieces = []
            for insn in cs.disasm(section.data(), section["sh_addr"]):
                pieces.append(f"{insn.address:8x}:\t{insn.bytes.hex(' '):21} \t"
                              f"{insn.mnemonic} {insn.op_str}\n")
                if len(pieces) >= 4096:
                    out.write("".join(pieces))
                    pieces.clear()
            out.write("".join(pieces))
    return 0


WHOLE_FILES = ["/usr/bin/python3.11", "/usr/lib/x86_64-linux-gnu/libc.so.6",
               os.path.expanduser("~/.cache/x86vm/linux/vmlinux")]


def _timed(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall, CPU of the child and its children) of one run, output to /dev/null."""
    before = _children_cpu()
    start = time.perf_counter()
    with open(os.devnull, "w") as sink:
        subprocess.run(args, stdout=sink, check=True, env=env)
    return time.perf_counter() - start, _children_cpu() - before


def bench_whole(files: list[str], runs: int) -> None:
    """x86vm disasm -d, objdump -d and the Capstone listing script as whole processes."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)    # as installed: modules load from .pyc files
    print(f"whole processes, median of {runs} runs (wall s / CPU s); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for path in files:
        if not os.path.exists(path):
            print(f"  {path}: missing, skipped")
            continue
        commands = {
            "x86vm disasm -d": [sys.executable, "-m", "x86vm", "disasm", "-d", path],
            "objdump -d": ["objdump", "-d", path],
            "capstone script": [sys.executable, __file__, "--capstone-listing", path],
        }
        for args in commands.values():      # the table cache, .pyc files, the page cache
            _timed(args, env)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(runs):                               # interleaved: same load for all
            for name, args in commands.items():
                times[name].append(_timed(args, env))
        medians = {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
                   for name, t in times.items()}
        print(f"  {path}:")
        for name, (wall, cpu) in medians.items():
            print(f"    {name:18} {wall:7.2f} s wall {cpu:7.2f} s CPU")
        ours = medians["x86vm disasm -d"]
        for other in ("objdump -d", "capstone script"):
            theirs = medians[other]
            print(f"    x86vm speed / {other}: {theirs[0] / ours[0]:.2f} (wall), "
                  f"{theirs[1] / ours[1]:.2f} (CPU)")


def main() -> int:
    if sys.argv[1:2] == ["--capstone-listing"]:
        return capstone_listing(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default="/usr/bin/python3.11")
    parser.add_argument("--whole", nargs="*", metavar="FILE",
                        help="whole-process figures (default files: python3.11, libc, vmlinux)")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--bytes", type=int, help="only the first N bytes of .text")
    parser.add_argument("--measure", choices=X86VM_FIGURES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.whole is not None:
        bench_whole(args.whole or WHOLE_FILES, args.runs or 5)
        return 0
    args.runs = args.runs or 3
    with open(args.file, "rb") as stream:
        elf = load_elf(args.file, stream)
        text = next(s for s in elf.sections if s.name == ".text")
        data = text.data()
    if args.bytes:
        data = data[:args.bytes]
    if args.measure:  # child process of bench_x86vm_fresh
        print(json.dumps(bench_x86vm(data, text.vma, args.runs, args.file, args.bytes,
                                     args.measure)))
        return 0
    print(f"{args.file} .text: {len(data)} bytes at 0x{text.vma:x}; median of {args.runs} runs")

    rates: dict[str, tuple[float, float, float, float, int]] = {}
    try:
        decoder_formatter(64, "att")
        rates.update(bench_x86vm_fresh(args))
    except ImportError as exc:
        print(f"x86vm decoder not available: {exc}")
    rates["objdump -d"] = bench_objdump(args.file, text.vma, args.bytes, args.runs)
    if not args.bytes:
        rates["x86vm disasm (process)"] = bench_x86vm_process(args.file, rates["objdump -d"][4],
                                                              args.runs)
    try:
        rates["capstone Cs.disasm"] = bench_capstone(data, text.vma, args.runs)
    except ImportError:
        print("capstone not installed (pip install capstone): skipped")

    print(f"  {'instructions/s':30} {'wall median':>12} {'CPU median':>12} {'wall 1st run':>12}"
          f" {'CPU 1st run':>12}")
    for name, (wall, cpu, first, first_cpu, count) in rates.items():
        print(f"  {name:30} {wall:12,.0f} {cpu:12,.0f} {first:12,.0f} {first_cpu:12,.0f}"
              f"  ({count} instructions)")
    print(f"ratios (CPU medians; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    for ours in [*X86VM_FIGURES, "x86vm disasm (process)"]:
        for other in ("capstone Cs.disasm", "objdump -d"):
            if ours in rates and other in rates:
                print(f"  {ours} / {other}: {rates[ours][1] / rates[other][1]:.2f}")
    # One pass in a fresh process is what a user's first listing of a binary costs: the
    # memoised decoder gets no help from an earlier pass over the same bytes.
    print("ratios, one cold pass (first run; wall clock, CPU time):")
    for ours in X86VM_FIGURES:
        other = "capstone Cs.disasm"
        if ours in rates and other in rates:
            print(f"  {ours} / {other}: {rates[ours][2] / rates[other][2]:.2f}, "
                  f"{rates[ours][3] / rates[other][3]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
