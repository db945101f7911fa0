"""Mutation check: do the tests fail when the code is wrong?

    python3 tests/tools/mutants.py [--subset] [--only SUBSTRING] [--timeout S] [--list]

Each mutant below is one realistic one-line bug (data: file, original text, replacement, what
it breaks). For each, a copy of the tree (``git ls-files`` from this work tree, as it is on
disk) gets the mutation and the default suite runs against it (``pytest -x -q -p
no:cacheprovider``; with ``--subset`` only the mutant's own test files, faster). The result:

- ``killed``: the suite failed (or timed out);
- ``survived``: it passed with as many skips as the unmutated baseline;
- ``skips``: it passed, but with more skips than the baseline -- the bug turned tests into
  skips, the worst outcome (issue 9).

A mutant whose original text no longer occurs exactly once is reported ``stale`` (the code
moved on: update the mutant). Run it under the heavy lock; it takes one suite run per mutant.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    area: str
    file: str
    original: str
    replacement: str
    description: str
    tests: tuple[str, ...] = ()       # the test files that should kill it (for --subset)


MAP = "src/x86vm/isa/opcodes.map"
DECODER = "src/x86vm/isa/decoder.py"
OPERAND_DECODE = "src/x86vm/isa/operand_decode.py"
ATT = "src/x86vm/disasm/att.py"
COMMON = "src/x86vm/disasm/common.py"
INTEL = "src/x86vm/disasm/intel.py"
ISA_TESTS = ("tests/test_isa_objdump.py", "tests/test_isa_sweep.py", "tests/test_isa_prefixes.py",
             "tests/test_isa_coverage.py", "tests/test_isa_truncation.py",
             "tests/test_disasm_listing.py")

MUTANTS = [
    # -- isa: the opcode map -------------------------------------------------------------------
    Mutant("isa map", MAP, "c1: xadd Ev,Gv (sfx hle lock)", "c1: xadd Ev,Gv (sfx lock)",
           "xadd loses its HLE hint: xacquire lock xadd prints repnz lock xadd", ISA_TESTS),
    Mutant("isa map", MAP, "89: mov Ev,Gv (sfx wo hler)", "89: mov Ev,Gv (sfx wo)",
           "mov to memory loses XRELEASE", ISA_TESTS),
    Mutant("isa map", MAP, "6b: imul Gv,Ev,Ibs", "6b: imul Gv,Ev,Ib",
           "imul's 8-bit immediate is not sign-extended", ISA_TESTS),
    Mutant("isa map", MAP, "c2: ret Iw (f64 ret bnd sfxw)", "c2: ret Ib (f64 ret bnd sfxw)",
           "ret imm16 reads one byte", ISA_TESTS),
    Mutant("isa map", MAP, "a8: test AL,Ib (nw)", "a8: test Ib,AL (nw)",
           "test AL,imm8 operands swapped", ISA_TESTS),
    Mutant("isa map", MAP, "79: vcvtps2udq Vx,Wx (W0 b4 er) |",
           "79: vcvtps2udq Vx,Wx (W0 b4 sae) |",
           "EVEX vcvtps2udq takes {sae} instead of rounding control", ISA_TESTS),
    Mutant("isa map", MAP, "8d: lea Gv,M (wo nomem)", "8d: lea Gv,Ev (wo nomem)",
           "lea accepts a register operand", ISA_TESTS),
    # -- isa: the decoder ----------------------------------------------------------------------
    Mutant("isa decoder", OPERAND_DECODE, "        if disp & 0x80:\n            disp -= 0x100",
           "        if disp & 0x100:\n            disp -= 0x100",
           "disp8 is not sign-extended", ISA_TESTS),
    Mutant("isa decoder", OPERAND_DECODE, "            elif idx != 4:",
           "            elif idx != 5:", "SIB index 4 (none) vs 5 confused", ISA_TESTS),
    Mutant("isa decoder", OPERAND_DECODE, "        n = 2 if asz == 16 else 4",
           "        n = 2 if asz == 32 else 4",
           "mod=2 displacement width by the wrong address size", ISA_TESTS),
    Mutant("isa decoder", "src/x86vm/isa/operands.py",
           'ADDR16 = [("bx", "si"), ("bx", "di"), ("bp", "si"), ("bp", "di"),',
           'ADDR16 = [("bx", "si"), ("bx", "di"), ("bp", "di"), ("bp", "si"),',
           "16-bit addressing table rows 2 and 3 swapped", ISA_TESTS),
    # -- disasm: the formatters ----------------------------------------------------------------
    Mutant("disasm", ATT, '        return f"${op.value:#x}"', '        return f"{op.value:#x}"',
           "AT&T immediates lose their $", ISA_TESTS),
    Mutant("disasm", ATT, "    if \"att-noreverse\" not in spec.objdump_flags:\n"
           "        order.reverse()", "    if \"att-noreverse\" in spec.objdump_flags:\n"
           "        order.reverse()", "AT&T operand order not reversed", ISA_TESTS),
    Mutant("disasm", COMMON, 'SUFFIX = {1: "b", 2: "w", 4: "l", 8: "q", 10: "t"}',
           'SUFFIX = {1: "b", 2: "w", 4: "d", 8: "q", 10: "t"}',
           "AT&T 32-bit suffix l printed as d", ISA_TESTS),
    Mutant("disasm", INTEL, '10: "TBYTE PTR ", 16: "XMMWORD PTR "',
           '10: "TBYTE PTR ", 16: "OWORD PTR "', "Intel 16-byte memory named OWORD", ISA_TESTS),
    Mutant("disasm", ATT, '        post = f"({b},{ix},{m.scale})"',
           '        post = f"({b},{ix},{m.scale << 1})"', "SIB scale printed doubled",
           ISA_TESTS),
    # -- devices -------------------------------------------------------------------------------
    Mutant("devices", "src/x86vm/devices/uart.py",
           "RX_TRIGGER_LEVELS = (1, 4, 8, 14)", "RX_TRIGGER_LEVELS = (1, 1, 8, 14)",
           "UART receive trigger level 4 acts as 1", ("tests/test_dev_uart.py",)),
    Mutant("devices", "src/x86vm/devices/uart.py",
           "        return RX_TRIGGER_LEVELS[(self.fcr & FCR.TRIGGER) >> 6]",
           "        return RX_TRIGGER_LEVELS[(self.fcr & FCR.TRIGGER) >> 7]",
           "UART trigger bits read one place off", ("tests/test_dev_uart.py",)),
    Mutant("devices", "src/x86vm/devices/cmos.py", "hour = self._encode(hour % 12 or 12)",
           "hour = self._encode(hour % 12)", "CMOS 12-hour mode shows 0 at midnight and noon",
           ("tests/test_dev_cmos.py",)),
    Mutant("devices", "src/x86vm/devices/cmos.py",
           "            hour = hour % 12 + (12 if regs[HOURS] & 0x80 else 0)",
           "            hour = hour + (12 if regs[HOURS] & 0x80 else 0)",
           "CMOS 12-hour writes: 12 AM loads as noon", ("tests/test_dev_cmos.py",)),
    Mutant("devices", "src/x86vm/devices/debug_exit.py",
           "        self.request_stop((value << 1) | 1,", "        self.request_stop(value << 1,",
           "debug-exit status without the low bit", ("tests/test_boot_e2e.py",
                                                      "tests/test_cli_run.py")),
    Mutant("devices", "src/x86vm/devices/ports.py",
           "            byte = self.read_byte(o) & 0xFF if 0 <= o < self.span else 0xFF",
           "            byte = self.read_byte(o) & 0xFF if 0 <= o < self.span else 0x00",
           "bytes past an 8-bit device read 0 instead of the floating bus",
           ("tests/test_dev_qemu.py", "tests/test_dev_pc.py")),
    Mutant("devices", "src/x86vm/devices/i8042.py",
           "            if not value & OUT_RESET:", "            if value & OUT_RESET:",
           "i8042 output-port write resets on the wrong level",
           ("tests/test_dev_i8042.py", "tests/test_dev_qemu.py")),
    Mutant("devices", "src/x86vm/devices/fw_cfg.py",
           "        if size == 2 and offset == 0:", "        if size == 2:",
           "fw_cfg selects on a 16-bit write to the data port too",
           ("tests/test_dev_fw_cfg.py", "tests/test_dev_qemu.py")),
    # -- boot loaders --------------------------------------------------------------------------
    Mutant("boot", "src/x86vm/machine/boot/linux.py",
           '    init_size = max(header_field(image, "init_size"), len(payload))',
           "    init_size = len(payload)", "Linux loader reserves the file, not init_size",
           ("tests/test_boot_loaders.py",)),
    Mutant("boot", "src/x86vm/machine/boot/layout.py", "EBDA_START = 0x9FC00",
           "EBDA_START = 0xA0000", "no EBDA in the e820 map", ("tests/test_boot_loaders.py",)),
    Mutant("boot", "src/x86vm/machine/boot/layout.py", "FIRMWARE_RESERVED = 0x20000",
           "FIRMWARE_RESERVED = 0x10000", "top-of-RAM firmware reservation halved",
           ("tests/test_boot_loaders.py",)),
    Mutant("boot", "src/x86vm/machine/boot/multiboot.py",
           '    table = b"".join(struct.pack("<IQQI", 20, e.addr, e.size, e.type)',
           '    table = b"".join(struct.pack("<IQQI", 24, e.addr, e.size, e.type)',
           "multiboot mmap entry size field wrong", ("tests/test_boot_loaders.py",)),
    # -- the run loop, buses and KVM -----------------------------------------------------------
    Mutant("run loop", "src/x86vm/machine/kvm/system.py",
           "            fd = fcntl.ioctl(self.fd, abi.KVM_CREATE_VM, 0)",
           "            fd = fcntl.ioctl(self.fd, abi.KVM_CREATE_VM, 1)",
           "KVM_CREATE_VM with a bad machine type fails", ("tests/test_support_gates.py",
                                                           "tests/test_kvm_machine.py")),
    Mutant("run loop", "src/x86vm/machine/bus.py",
           "            self._unclaimed(addr, size, True)\n            return\n"
           "        m.device.write(addr - m.base, size, value)\n\n\nclass MmioBus",
           "            self._unclaimed(addr, size, True)\n            return\n"
           "        m.device.write(addr % m.size, size, value)\n\n\nclass MmioBus",
           "port writes reach a device at an offset masked by its size (unaligned bases)",
           ("tests/test_unaligned_bases.py", "tests/test_runloop.py")),
    Mutant("run loop", "src/x86vm/machine/bus.py",
           "            return (1 << (8 * size)) - 1\n"
           "        return m.device.read(addr - m.base, size)\n\n"
           "    def write(self, addr: int, size: int, value: int) -> None:\n"
           "        self.writes += 1\n        try:",
           "            return (1 << (8 * size)) - 1\n"
           "        return m.device.read(addr & 7, size)\n\n"
           "    def write(self, addr: int, size: int, value: int) -> None:\n"
           "        self.writes += 1\n        try:",
           "port reads offset by the low address bits", ("tests/test_unaligned_bases.py",
                                                         "tests/test_runloop.py")),
    Mutant("run loop", "src/x86vm/machine/runloop.py",
           "        for i in range(0, size * ex.count, size):\n"
           "            pio.write(ex.port, size, int.from_bytes(data[i:i + size], \"little\"))",
           "        for i in range(0, size * (ex.count - 1), size):\n"
           "            pio.write(ex.port, size, int.from_bytes(data[i:i + size], \"little\"))",
           "rep outs drops its last element", ("tests/test_runloop.py",)),
    Mutant("run loop", "src/x86vm/machine/bus.py",
           "            if base < m.end and m.base < base + size:",
           "            if base < m.end and m.base < base + size - 1:",
           "the bus accepts a one-byte overlap", ("tests/test_machine_core.py",)),
    Mutant("run loop", "src/x86vm/machine/memory.py", "            if gpa + length <= r.end:",
           "            if gpa <= r.end:", "guest memory access checked at its start only",
           ("tests/test_machine_core.py", "tests/test_dev_robustness.py")),
]


def copy_tree(dest: Path) -> None:
    """This work tree's tracked files (as on disk) and the untracked ones not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout.split(b"\0")
    for name in filter(None, listed):
        src = ROOT / name.decode()
        if src.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected)")


def run_suite(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, dict, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                               "no:cacheprovider", *tests], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", {}, time.monotonic() - start
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n)
              for n, kind in SUMMARY.findall(done.stdout.splitlines()[-1] if done.stdout
                                             else "")}
    failed = done.returncode != 0
    return ("fail" if failed else "pass"), counts, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", action="store_true",
                        help="run only each mutant's own test files (faster)")
    parser.add_argument("--only", help="mutants whose description or file contains this")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if not args.only
               or args.only in m.description or args.only in m.file]
    if args.list:
        for m in mutants:
            print(f"{m.area:11} {m.file}: {m.description}")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="x86vm-mutants-"))
    try:
        copy_tree(tmp)
        baselines: dict[tuple[str, ...], dict] = {}
        rows = []
        for m in mutants:
            tests = m.tests if args.subset else ()
            if tests not in baselines:
                verdict, counts, secs = run_suite(tmp, tests, args.timeout)
                if verdict != "pass":
                    print(f"baseline {' '.join(tests) or 'suite'} does not pass: {counts}")
                    return 2
                baselines[tests] = counts
                print(f"baseline {' '.join(tests) or '(default suite)'}: {counts} "
                      f"({secs:.0f} s)", flush=True)
            path = tmp / m.file
            text = path.read_text()
            if text.count(m.original) != 1:
                rows.append((m, "stale", {}, 0.0))
                print(f"{'stale':9} {m.description}", flush=True)
                continue
            path.write_text(text.replace(m.original, m.replacement))
            try:
                verdict, counts, secs = run_suite(tmp, tests, args.timeout)
            finally:
                path.write_text(text)
            if verdict in ("fail", "timeout"):
                result = "killed"
            elif counts.get("skipped", 0) > baselines[tests].get("skipped", 0):
                result = "skips"
            else:
                result = "survived"
            rows.append((m, result, counts, secs))
            print(f"{result:9} {secs:5.0f} s  {m.area:11} {m.description}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| result | area | file | mutation |\n| --- | --- | --- | --- |")
    for m, result, _, _ in rows:
        print(f"| {result} | {m.area} | {m.file.removeprefix('src/x86vm/')} | "
              f"{m.description} |")
    tally = {r: sum(1 for row in rows if row[1] == r)
             for r in ("killed", "survived", "skips", "stale")}
    live = len(rows) - tally["stale"]
    share = 100 * tally["killed"] / live if live else 0
    print(f"\n{len(rows)} mutants: {tally['killed']} killed ({share:.0f} % of {live}), "
          f"{tally['survived']} survived, {tally['skips']} turned into skips, "
          f"{tally['stale']} stale ({'subset' if args.subset else 'default suite'})")
    return 0 if tally["survived"] == tally["skips"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
