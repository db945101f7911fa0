"""Quick throughput check of the decoder and formatters (not a test; see docs/isa.md).

    python3 tests/isa_speed.py [FILE]       # default /usr/bin/python3.11 (.text)

Each measurement runs in a fresh process so the memo caches start cold; "warm" repeats the
pass in the same process.  CPU time (process_time) is used: the machine is shared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _one(path: str, what: str) -> None:
    sys.path.insert(0, os.path.join(HERE, "..", "src"))
    sys.path.insert(0, HERE)
    from isa_compare import load_code

    data, address = load_code(path)
    if what == "capstone":
        try:
            from capstone import CS_ARCH_X86, CS_MODE_64, Cs
        except ImportError:
            print("capstone        not installed")
            return
        md = Cs(CS_ARCH_X86, CS_MODE_64)
        start = time.process_time()
        n = sum(1 for _ in md.disasm(data, address))
        print(f"capstone        {n / (time.process_time() - start):>10,.0f} insn/s")
        return
    from x86vm.disasm.att import format_att
    from x86vm.disasm.intel import format_intel
    from x86vm.isa import decode_all

    fmt = {"decode": None, "att": format_att, "intel": format_intel}[what]
    for label in ("cold", "warm"):
        start = time.process_time()
        n = 0
        if fmt is None:
            for _ in decode_all(data, address):
                n += 1
        else:
            for insn in decode_all(data, address):
                fmt(insn)
                n += 1
        rate = n / (time.process_time() - start)
        name = "decode-only" if fmt is None else f"decode+{what}"
        print(f"{name:<15} {rate:>10,.0f} insn/s  ({label}, {n} instructions)")


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else \
        "/usr/bin/python3.11"
    if "--one" in sys.argv:
        _one(path, sys.argv[-1])
        return 0
    for what in ("capstone", "decode", "att", "intel"):
        subprocess.run([sys.executable, __file__, path, "--one", what], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
