"""MIPS of the pure-Python CPU on CPU-bound bare-metal guests, with KVM on the same guests.

The guest (bench/cpu_guest.c, gcc -O2, the long-mode PVH entry of tests/guests) runs one
workload named on its command line: a sieve, crc32 over a table, a quicksort, a
memcpy/strlen loop, and a long-mode loop that takes a page fault per page it touches. Each
runs on the emu backend twice (the instruction counts must be identical: guest time is
virtual) and once on KVM when /dev/kvm can create a VM; both must print the same checksum.
MIPS = instructions retired on emu / seconds (wall clock, and CPU time of this process);
KVM's figure uses the emu's instruction count for the same guest.

Usage: ``python3 bench/cpu.py [--scale F] [--no-kvm]`` (from the repository root; run it
under ``flock /tmp/x86vm-heavy.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from guests import build as guest_build  # noqa: E402
from x86vm.devices.console import BufferConsole  # noqa: E402
from x86vm.devices.pc import attach_pc_devices  # noqa: E402
from x86vm.machine.boot import load_image  # noqa: E402
from x86vm.machine.vm import Machine  # noqa: E402

GUEST = "cpu_bench.elf"
WORKLOADS = {"sieve": 65536, "crc32": 150, "qsort": 16000, "memcpy": 800, "pagefault": 40}


def build(outdir: Path) -> bytes:
    guest_build.RECIPES[GUEST] = guest_build.Recipe(
        ("long64/pvh_entry.S", "long64/common.S", "../../bench/cpu_guest.c"), 64,
        "long64/link.ld", "pvh_start")
    return guest_build.build(GUEST, outdir).read_bytes()


def run_once(image: bytes, cmdline: str, backend: str) -> tuple[str, int | None, float, float]:
    """(serial output, instructions retired or None, wall seconds, CPU seconds)."""
    console = BufferConsole()
    with Machine(memory_size=64 << 20, backend=backend) as m:
        attach_pc_devices(m, console, debug_exit_port=0xF4)
        entry = load_image(m.memory, image, "pvh", cmdline=cmdline)
        t0, c0 = time.perf_counter(), time.process_time()
        result = m.run(entry, timeout=600)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        stats = getattr(m.backend, "stats", None)
        count = stats()["instructions"] if stats else None
    if result.status != 1:
        raise RuntimeError(f"{backend} {cmdline}: {result.reason}")
    return bytes(console.output).decode("latin-1"), count, elapsed, cpu


def kvm_usable() -> bool:
    try:
        Machine(memory_size=2 << 20, backend="kvm").close()
        return True
    except Exception:
        return False


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every workload size")
    ap.add_argument("--no-kvm", action="store_true", help="emu only")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        image = build(Path(tmp))
    use_kvm = not args.no_kvm and kvm_usable()
    print("MIPS = instructions retired on emu / seconds (wall clock; CPU time in brackets)")
    print(f"{'workload':10} {'instructions':>13} {'emu s':>6} {'emu MIPS':>15} "
          f"{'kvm s':>6} {'kvm MIPS':>15} {'kvm/emu s':>9}  checksum")
    mips, mips_cpu = [], []
    for name, size in WORKLOADS.items():
        cmdline = f"{name} {max(1, int(size * args.scale))}"
        out1, n1, t1, c1 = run_once(image, cmdline, "emu")
        out2, n2, t2, c2 = run_once(image, cmdline, "emu")
        if (out1, n1) != (out2, n2):
            raise RuntimeError(f"{name}: two emu runs differ: {n1} vs {n2} instructions")
        t_emu, c_emu = min(t1, t2), min(c1, c2)
        mips.append(n1 / t_emu / 1e6)
        mips_cpu.append(n1 / c_emu / 1e6)
        kvm_cols = f"{'-':>6} {'-':>15} {'-':>9}"
        if use_kvm:
            out_k, _, t_k, c_k = run_once(image, cmdline, "kvm")
            if out_k != out1:
                raise RuntimeError(f"{name}: KVM printed {out_k!r}, emu {out1!r}")
            kvm_cols = (f"{t_k:6.2f} {n1 / t_k / 1e6:7.2f} ({n1 / max(c_k, 1e-9) / 1e6:5.1f}) "
                        f"{t_k / t_emu:9.2f}")
        print(f"{name:10} {n1:13,} {t_emu:6.2f} {mips[-1]:7.2f} ({mips_cpu[-1]:5.2f}) "
              f"{kvm_cols}  {out1.strip().split(': ')[-1]}")
    print(f"median emu MIPS: {statistics.median(mips):.2f} wall, "
          f"{statistics.median(mips_cpu):.2f} CPU (identical instruction counts on two runs "
          "of each guest)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
