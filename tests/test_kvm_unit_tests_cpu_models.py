"""scripts/kvm-unit-tests' table of QEMU CPU models (vendor, LA57, SVM) against QEMU itself:
a tiny Multiboot guest prints CPUID leaves 0, 1, 7, 0x80000000 and 0x80000001 on COM1 under
``qemu-system-x86_64 -accel tcg -cpu MODEL`` for every model of the table.

    cd tests && PYTHONPATH=../src:. python3 test_kvm_unit_tests_cpu_models.py [MODEL ...]

prints the leaves as the guest read them (the table in docs/kvm-unit-tests.md comes from it).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import multiboot_elf, multiboot_serial, serial_hex_report
from guests.oracle import qemu_serial
from test_cpu_syscall_vendor import EPILOGUE, PROLOGUE, build
from test_kvm_unit_tests_script import KUT

LEAVES = ((0, 0), (1, 0), (7, 0), (0x80000000, 0), (0x80000001, 0))

# 32-bit Multiboot guest: for each (leaf, subleaf) six lines: leaf, subleaf, EAX, EBX, ECX, EDX
GUEST = """
    .code32
    .text
    .align 4
    .long 0x1badb002, 0, -0x1badb002
    .globl _start
_start:
    mov $0x80000, %esp
    mov $leaves, %esi
1:  mov (%esi), %eax
    cmp $0xffffffff, %eax
    je done
    mov 4(%esi), %ecx
    call report
    mov %ecx, %eax
    call report
    mov (%esi), %eax
    cpuid
    call report
    mov %ebx, %eax
    call report
    mov %ecx, %eax
    call report
    mov %edx, %eax
    call report
    add $8, %esi
    jmp 1b
done:
    mov $0x10, %al
    out %al, $0xf4
    hlt
""" + serial_hex_report(32) + """
    .align 4
leaves:
""" + "".join(f"    .long {leaf:#x}, {sub}\n" for leaf, sub in LEAVES) + "    .long 0xffffffff\n"


def qemu_cpuid(model: str, tmp: Path) -> dict[tuple[int, int], tuple[int, ...]]:
    """{(leaf, subleaf): (eax, ebx, ecx, edx)} as the guest reads them on QEMU TCG."""
    multiboot_elf(GUEST, tmp, 0x100000)
    status, serial = qemu_serial(tmp, "-accel", "tcg", "-cpu", model, "-kernel", "k.elf")
    assert status == 33, serial   # debug-exit (0x10 << 1) | 1
    words = [int(w, 16) for w in serial.split()]
    regs = {(words[i], words[i + 1]): tuple(words[i + 2:i + 6]) for i in range(0, len(words), 6)}
    assert set(regs) == set(LEAVES)
    return regs


def vendor(regs) -> str:
    _, ebx, ecx, edx = regs[0, 0]
    return b"".join(r.to_bytes(4, "little") for r in (ebx, edx, ecx)).decode()


def features(regs) -> frozenset[str]:
    """The features of QEMU_TCG_MODELS' entries: LA57 CPUID.7.0:ECX[16] (SDM Vol. 2A CPUID),
    SVM CPUID.80000001H:ECX[2] (AMD APM Vol. 3 E.4.2)."""
    found = set()
    if regs[0, 0][0] >= 7 and regs[7, 0][2] >> 16 & 1:   # beyond the last leaf: another's
        found.add("la57")
    if regs[0x80000000, 0][0] >= 0x80000001 and regs[0x80000001, 0][2] >> 2 & 1:
        found.add("svm")
    return frozenset(found)


@pytest.mark.oracle("qemu")
@pytest.mark.parametrize("model", sorted(KUT.QEMU_TCG_MODELS))
def test_the_model_table_is_what_qemu_tcg_presents(model, tmp_path):
    regs = qemu_cpuid(model, tmp_path)
    entry = KUT.QEMU_TCG_MODELS[model]
    assert (vendor(regs), features(regs)) == (entry.vendor, entry.features)


if __name__ == "__main__":
    for name in sys.argv[1:] or sorted(KUT.QEMU_TCG_MODELS):
        with tempfile.TemporaryDirectory() as tmp:
            cpuid = qemu_cpuid(name, Path(tmp))
        print(f"{name}: {vendor(cpuid)} {' '.join(sorted(features(cpuid))) or '-'}")
        for (leaf, sub), values in cpuid.items():
            print(f"    {leaf:08x}.{sub}: " + " ".join(f"{v:08x}" for v in values))


# REX.W far JMP, where qemu64's vendor and QEMU TCG part: AMD takes FF /5 as m16:32 with
# REX.W (APM Vol. 3 "JMP (Far)" has no m16:64 form), Intel as m16:64 (SDM Vol. 2A "JMP").
# The operand below reads as 0x08:target in m16:32 and as selector 0 (#GP(0)) in m16:64.
FAR_JMP_GUEST_BODY = r"""
    lea target(%rip), %rax
    mov %eax, farptr(%rip)
    movw $0x08, farptr + 4(%rip)
    rex.W ljmp *farptr(%rip)
    mov $0x0bad0000, %eax
    call report
    jmp done
target:
    mov $0x600d, %eax
    call report
    jmp done
    .align 8
farptr: .quad 0, 0
"""
M16_32, M16_64 = "0000600d\n", "0bad000d\n00000000\n"   # jumped; #GP(0)

# the same operand in user mode on the host: 0x33 is Linux's 64-bit user CS
HOST_HARNESS = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
static void on_segv(int sig) { (void)sig; puts("m16:64"); exit(0); }
static unsigned char farptr[16];
int main(void) {
    signal(SIGSEGV, on_segv);
    asm volatile("lea 1f(%%rip), %%rax\n\tmov %%eax, (%0)\n\tmovw $0x33, 4(%0)\n\t"
                 "rex.W ljmp *(%0)\n1:\n" : : "r"(farptr) : "rax", "memory");
    puts("m16:32");
    return 0;
}
"""


def host_vendor() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("vendor_id"):
            return line.split(":", 1)[1].strip()
    return ""


@pytest.mark.oracle("gcc")
def test_rex_w_far_jump_follows_the_vendor_as_on_this_host(tmp_path):
    vendor = host_vendor()
    if vendor not in ("AuthenticAMD", "GenuineIntel"):
        pytest.skip(f"host vendor {vendor!r}")
    (tmp_path / "h.c").write_text(HOST_HARNESS)
    subprocess.run(["gcc", "-O1", "-no-pie", "-o", "h", "h.c"], cwd=tmp_path, check=True)
    form = subprocess.run(["./h"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30).stdout.strip()
    assert form == ("m16:32" if vendor == "AuthenticAMD" else "m16:64")
    image = build(tmp_path, PROLOGUE + FAR_JMP_GUEST_BODY + EPILOGUE)
    assert multiboot_serial(image, "emu", cpu_vendor=vendor) == (
        33, M16_32 if form == "m16:32" else M16_64)


@pytest.mark.oracle("qemu")
def test_qemu_tcg_takes_m16_64_under_qemu64s_amd_vendor(tmp_path):
    # why kvm-unit-tests' emulator "ljmp" passes on TCG and not on emu as qemu64's vendor
    build(tmp_path, PROLOGUE + FAR_JMP_GUEST_BODY + EPILOGUE)
    assert qemu_serial(tmp_path, "-cpu", "qemu64", "-kernel", "k.elf") == (33, M16_64)
