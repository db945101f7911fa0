"""Quick throughput check of the decoder and formatters (not a test; see docs/isa.md).

    python3 tests/tools/isa_speed.py [FILE] [--runs N]     # default /usr/bin/python3.11 (.text)
    python3 tests/tools/isa_speed.py [FILE] --check        # the measured path against objdump

Each figure is measured in N fresh processes (median printed): "cold" is one pass over the
section right after import, so it includes filling the memo caches; "warm" repeats the pass
in the same process.  The one-off import (opcode map -> tables) is printed on its own.
Capstone is measured as bench/disasm.py does: `Cs.disasm` with skipdata, reading
`mnemonic` and `op_str` of every instruction.  CPU time (process_time): the machine is
shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
WHAT = ("capstone", "decode", "att", "intel")


def _one(path: str, what: str) -> dict:
    sys.path.insert(0, os.path.join(HERE, "..", "src"))
    sys.path.insert(0, HERE)
    start = time.process_time()
    if what == "capstone":
        try:
            import capstone  # noqa: F401  (its import time is what is measured here)
        except ImportError:
            return {}
    else:
        from x86vm.disasm.att import format_att
        from x86vm.disasm.intel import format_intel
        from x86vm.isa import decode_all
    imported = time.process_time() - start
    from tools.isa_compare import load_code

    data, address = load_code(path)
    if what == "capstone":
        sys.path.insert(0, os.path.join(HERE, "..", "bench"))
        from disasm import capstone_workload  # bench/disasm.py: the same workload

        work = capstone_workload(data, address)
    else:
        fmt = {"decode": None, "att": format_att, "intel": format_intel}[what]

        def work() -> int:
            n = 0
            if fmt is None:
                for _ in decode_all(data, address):
                    n += 1
            else:
                for insn in decode_all(data, address):
                    fmt(insn)
                    n += 1
            return n
    out = {"import": imported}
    for label in ("cold", "warm"):
        start = time.process_time()
        n = work()
        out[label] = n / (time.process_time() - start)
        out["n"] = n
    return out


def _check(path: str) -> int:
    """decode_all + format, as timed (caches cold for AT&T, warm for Intel), against objdump:
    isa_compare.py decodes at objdump's addresses with `decode`; this checks the sweep."""
    sys.path.insert(0, os.path.join(HERE, "..", "src"))
    sys.path.insert(0, HERE)
    from oracle.objdump import objdump
    from tools.isa_compare import load_code
    from x86vm.disasm.att import format_att
    from x86vm.disasm.intel import format_intel
    from x86vm.isa import decode_all

    data, address = load_code(path)
    bad = 0
    for intel, fmt in ((False, format_att), (True, format_intel)):
        want = [tuple(x) for x in objdump(data, 64, intel, address)]
        got = [(i.address, i.length, fmt(i)) for i in decode_all(data, address)]
        wrong = sum(1 for w, g in zip(want, got, strict=False) if w != g)
        wrong += abs(len(want) - len(got))
        print(f"{path} [{'intel' if intel else 'att'}]: {len(want)} instructions, "
              f"{wrong} differ from objdump")
        bad += wrong
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", default="/usr/bin/python3.11")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", choices=WHAT, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true",
                        help="compare what the timed loop formats (decode_all, cold caches) "
                             "with objdump, in both syntaxes")
    args = parser.parse_args()
    path, runs = args.file, args.runs
    if args.check:
        return _check(path)
    if args.one:
        print(json.dumps(_one(path, args.one)))
        return 0
    results: dict[str, list[dict]] = {w: [] for w in WHAT}
    for _ in range(runs):           # interleaved, so load changes hit every figure alike
        for what in WHAT:
            out = subprocess.run([sys.executable, __file__, path, f"--one={what}"],
                                 check=True, capture_output=True, text=True).stdout
            results[what].append(json.loads(out))
    if not results["capstone"][0]:
        print("capstone        not installed (pip install capstone)")
    median = {w: {k: statistics.median(r[k] for r in rs) for k in ("import", "cold", "warm")}
              for w, rs in results.items() if rs[0]}
    names = {"capstone": "capstone text", "decode": "decode-only", "att": "decode+att",
             "intel": "decode+intel"}
    n = results["decode"][0]["n"]
    print(f"{path}: {n} instructions; median of {runs} fresh processes (CPU time)")
    print(f"  {'insn/s':15} {'cold':>10} {'warm':>10} {'import s':>9}  ratio to capstone "
          "(cold, warm)")
    for what, m in median.items():
        ratio = ""
        if what != "capstone" and "capstone" in median:
            cs = median["capstone"]
            ratio = f"{m['cold'] / cs['cold']:.2f}, {m['warm'] / cs['warm']:.2f}"
        print(f"  {names[what]:15} {m['cold']:10,.0f} {m['warm']:10,.0f} {m['import']:9.2f}"
              f"  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
