"""5-level paging (SDM Vol. 3A §4.5, LA57) on the Python CPU against QEMU TCG ``-cpu max``.

One Multiboot guest enters long mode with 4-level paging, checks the 48-bit rules there, leaves
IA-32e mode through compatibility mode, sets CR4.LA57 and re-enters with 5-level paging: a
high (bit 56 set) alias of low memory, a 57-bit-canonical but 48-bit-non-canonical address
(#PF, not #GP), a 57-bit-non-canonical one (#GP), PS in a PML5E (a reserved bit), the accessed
and dirty bits of every level, a CR3 reload and an INVLPG after the PML5E changes, FS based at
the high alias. It prints each result on COM1; x86vm's emu must print the same as QEMU.
The unit tests below check what QEMU does not (QEMU 7.2 takes any MSR value and descriptor-
table base; kvm-unit-tests la57 and KVM's emulator are the references there).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import assembler_missing, serial_hex_report
from guests.oracle import QEMU_BASE, qemu_available
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine.boot import load_image
from x86vm.machine.vm import Machine

HIGH = 0xFF80_0000_0030_0000       # PML5 index 384 → the low PML4: phys 0x300000
HALF = 0x0000_8000_0000_0000       # canonical at 57 bits only; PML5[0] → PML4[256]: absent
WILD = 0x0100_0000_0000_0000       # bit 56 set, 63:57 clear: canonical at neither width
PS5 = 0xFF90_0000_0000_0000        # PML5 index 400: an entry with PS set

GUEST = f"""
    .text
    .code32
    .align 4
    .long 0x1badb002, 0, -0x1badb002        /* Multiboot header, no flags */
    .globl _start
_start:
    mov $0x70000, %esp
    lgdt gdtr
    ljmp $0x18, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    /* zero 0x100000-0x107fff, then the tables: PML5 0x100000, PML4 0x101000, PDPT 0x102000,
       PD 0x103000 (2 MiB pages: 0-6 MiB identity); PML4b 0x104000 → PDPTb → PDb maps
       its second 2 MiB at phys 0x400000 */
    mov $0x100000, %edi
    xor %eax, %eax
    mov $0x2000, %ecx
    rep stosl
    movl $0x101003, 0x100000
    movl $0x101003, 0x100000 + 384 * 8
    movl $0x101083, 0x100000 + 400 * 8
    movl $0x102003, 0x101000
    movl $0x103003, 0x102000
    movl $0x000083, 0x103000
    movl $0x200083, 0x103008
    movl $0x400083, 0x103010
    movl $0x105003, 0x104000
    movl $0x106003, 0x105000
    movl $0x400083, 0x106008
    movl $0x11111111, 0x300000
    movl $0x22222222, 0x500000
    /* the IDT: 16-byte gates for #GP and #PF */
    mov $gp_handler, %eax
    mov $idt + 13 * 16, %ebx
    call gate
    mov $pf_handler, %eax
    mov $idt + 14 * 16, %ebx
    call gate
    lidt idtr
    mov $7, %eax
    xor %ecx, %ecx
    cpuid
    mov %ecx, leaf7_ecx
    mov $0x80000008, %eax
    cpuid
    mov %eax, ext8_eax
    /* IA-32e mode, 4-level paging */
    mov $0x20, %eax
    mov %eax, %cr4
    mov $0x101000, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    ljmp $0x08, $long4

gate:                                       /* EAX: handler, EBX: the gate */
    mov %ax, (%ebx)
    movw $0x08, 2(%ebx)
    movw $0x8e00, 4(%ebx)
    shr $16, %eax
    mov %ax, 6(%ebx)
    movl $0, 8(%ebx)
    movl $0, 12(%ebx)
    ret

    .code64
long4:
    mov leaf7_ecx, %eax
    shr $16, %eax
    and $1, %eax
    call report                             /* CPUID.7:ECX.LA57 */
    mov ext8_eax, %eax
    shr $8, %eax
    and $0xff, %eax
    call report                             /* linear-address bits */
    movabs ${HALF:#x}, %rbx
    lea 1f(%rip), %rax
    mov %rax, recover(%rip)
    mov (%rbx), %rax                        /* 4-level: not canonical, #GP(0) */
1:  lea 2f(%rip), %rax
    mov %rax, recover(%rip)
    mov %cr4, %rax
    bts $12, %rax
    mov %rax, %cr4                          /* LA57 in IA-32e mode: #GP(0) */
2:  mov %cr4, %rax
    call report
    push $0x18                              /* leave IA-32e mode from compatibility mode */
    lea compat(%rip), %rax
    push %rax
    lretq

    .code32
compat:
    mov %cr0, %eax
    and $0x7fffffff, %eax
    mov %eax, %cr0
    mov %cr4, %eax
    bts $12, %eax
    mov %eax, %cr4
    mov $0x100000, %eax
    mov %eax, %cr3
    mov %cr0, %eax
    or $0x80000000, %eax
    mov %eax, %cr0
    ljmp $0x08, $long5

    .code64
long5:
    lea 1f(%rip), %rax
    mov %rax, recover(%rip)
    mov %cr4, %rax
    btr $12, %rax
    mov %rax, %cr4                          /* clearing LA57 in IA-32e mode: #GP(0) */
1:  mov %cr4, %rax
    call report
    mov $0xc0000080, %ecx
    rdmsr
    call report                             /* EFER: LMA back */
    movabs ${HIGH:#x}, %rbx
    mov (%rbx), %eax
    call report                             /* the high alias reads phys 0x300000 */
    movl $0x33333333, 4(%rbx)
    mov 0x300004, %eax
    call report                             /* ... and writes it */
    mov 0x100000 + 384 * 8, %rax
    call report                             /* PML5E: accessed */
    mov 0x101000, %rax
    call report                             /* PML4E */
    mov 0x103008, %rax
    call report                             /* PDE of a 2 MiB page: accessed, dirty */
    movabs ${HALF:#x}, %rbx
    lea 1f(%rip), %rax
    mov %rax, recover(%rip)
    mov (%rbx), %rax                        /* 5-level: canonical, absent: #PF */
1:  movabs ${WILD:#x}, %rbx
    lea 1f(%rip), %rax
    mov %rax, recover(%rip)
    movl $0, (%rbx)                         /* not canonical at 57 bits: #GP(0) */
1:  movabs ${PS5:#x}, %rbx
    lea 1f(%rip), %rax
    mov %rax, recover(%rip)
    movq $~1, errmask(%rip)                 /* (QEMU 7.2 clears P: SDM §4.7 sets it) */
    mov (%rbx), %rax                        /* PS in a PML5E: #PF, RSVD */
1:  movq $-1, errmask(%rip)
    movl $0x104003, 0x100000 + 384 * 8      /* PML5[384] → PML4b */
    mov %cr3, %rax
    mov %rax, %cr3
    movabs ${HIGH:#x}, %rbx
    mov (%rbx), %eax
    call report                             /* after the CR3 reload: phys 0x500000 */
    movl $0x101003, 0x100000 + 384 * 8
    invlpg (%rbx)
    mov (%rbx), %eax
    call report                             /* after INVLPG: phys 0x300000 again */
    mov $0xc0000100, %ecx
    mov %ebx, %eax
    shr $32, %rbx
    mov %ebx, %edx
    wrmsr                                   /* FS base at the high alias */
    mov %fs:4, %eax
    call report
    lea 1f(%rip), %rax                      /* branches to non-canonical targets fault */
    mov %rax, recover(%rip)                 /* there (QEMU TCG: RIP = the target) */
    movabs ${WILD:#x}, %rax
    jmp *%rax
1:  lea 1f(%rip), %rax
    mov %rax, recover(%rip)
    movabs ${WILD:#x}, %rax
    push %rax
    ret
1:  lea 1f(%rip), %rax                      /* canonical at 57 bits only: #PF */
    mov %rax, recover(%rip)
    movabs ${HALF - 2:#x}, %rax
    jmp *%rax
1:  mov $0x10, %al
    out %al, $0xf4
    hlt

gp_handler:
    push $13
    jmp fault
pf_handler:
    push $14
fault:
    pop %rax
    call report                             /* vector */
    pop %rax
    and errmask(%rip), %rax
    call report                             /* error code */
    mov %cr2, %rax
    call report
    mov (%rsp), %rax
    call report                             /* the RIP saved */
    mov recover(%rip), %rax
    mov %rax, (%rsp)
    iretq

{serial_hex_report(64, wide=True)}    .data
    .align 16
gdt:
    .quad 0, 0x00af9a000000ffff, 0x00cf92000000ffff, 0x00cf9a000000ffff
gdtr:
    .word 4 * 8 - 1
    .long gdt
    .align 16
idt:
    .fill 16 * 16, 1, 0
idtr:
    .word 16 * 16 - 1
    .long idt
    .align 8
recover: .quad 0
errmask: .quad -1
leaf7_ecx: .long 0
ext8_eax: .long 0
"""
LINES = 49   # results printed by GUEST


def build(tmp: Path) -> bytes:
    """GUEST as a Multiboot ELF32 (64-bit code in an elf32-i386 file, as kvm-unit-tests)."""
    (tmp / "g.S").write_text(GUEST)
    for cmd in (["as", "--64", "-o", "g.o", "g.S"],
                ["ld", "-m", "elf_x86_64", "-Ttext", "0x10000", "-e", "_start", "-o", "g64",
                 "g.o"],
                ["objcopy", "-O", "elf32-i386", "g64", "g.elf"]):
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr)
    return (tmp / "g.elf").read_bytes()


def on_qemu(image: bytes, tmp: Path) -> tuple[int, str]:
    (tmp / "k.elf").write_bytes(image)
    proc = subprocess.run([*QEMU_BASE, "-cpu", "max", "-kernel", "k.elf"], cwd=tmp,
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return proc.returncode, (tmp / "serial.out").read_bytes().decode("latin-1")


def on_emu(image: bytes) -> tuple[int, str]:
    console = BufferConsole()
    with Machine(memory_size=128 << 20, backend="emu") as m:
        attach_pc_devices(m, console, debug_exit_port=0xF4)
        result = m.run(load_image(m.memory, image, "multiboot", cmdline="k.elf"), timeout=30)
    return result.status, bytes(console.output).decode("latin-1")


@pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))
@pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed")
def test_five_level_paging_guest_matches_qemu_cpu_max():
    with tempfile.TemporaryDirectory() as tmp:
        image = build(Path(tmp))
        expected = on_qemu(image, Path(tmp))
    assert expected[0] == 33 and expected[1].count("\n") == LINES, expected
    assert on_emu(image) == expected


# -- the page walkers against tables built with known translations ---------------------------

def test_both_walkers_translate_five_level_tables_as_built():
    """cpu/mmu.py (the CPU) and trace/paging.py (the debugger) read the same 5-level tables:
    4 KiB, 2 MiB and 1 GiB pages in both canonical halves, and fault (#PF absent, #GP not
    canonical at 57 bits) exactly where the builder mapped nothing."""
    import random

    from test_trace_oops import Tables, constructed, probes, random_mappings
    from x86vm.cpu.errors import GP, PF, CpuFault
    from x86vm.cpu.mmu import READ
    from x86vm.cpu.paging import canonical
    from x86vm.machine.emu.backend import EmuBackend
    from x86vm.machine.memory import GuestMemory
    from x86vm.trace.paging import TranslationError, translate

    memory = GuestMemory()
    memory.add_ram(0, 64 << 20)
    try:
        rng = random.Random("5-level")
        tables = Tables(memory, "5-level")
        mappings = random_mappings(rng, "5-level", 64 << 20)
        for linear, size, phys in mappings:
            tables.map(linear, size, phys)
        state = tables.state()
        backend = EmuBackend(memory)
        backend.set_state(state)
        mapped = 0
        for address in probes(rng, mappings, "5-level"):
            expected = constructed(mappings, address)
            try:
                debugger = translate(memory, state, address)
            except TranslationError:
                debugger = None
            try:
                cpu = backend.cpu.translate(address, READ, user=False)[0]
            except CpuFault as fault:
                assert fault.vector == (PF if canonical(address, 57) else GP), hex(address)
                cpu = None
            assert debugger == cpu == expected, f"{address:#x}"
            mapped += expected is not None
        assert mapped > 60 and any(m[0] >> 56 for m in mappings)
    finally:
        memory.close()


# -- what QEMU 7.2 does not check: the canonical width of stored addresses, a 48-bit model ----
# QEMU TCG takes any MSR value and descriptor-table base. The references: kvm-unit-tests la57
# (a 57-bit-canonical value "will work on CPUs that *support* LA57", in 4-level paging too)
# and KVM's arch/x86/kvm/x86.h (is_noncanonical_msr_address / _base_address: the width the
# processor supports, not CR4.LA57's).

CANONICAL_57 = 0xFFAAAAAAAAAAAAAA   # kvm-unit-tests' CANONICAL_57_VAL
NON_CANONICAL = 0xAAAAAAAAAAAAAAAA


@pytest.fixture
def model(request, monkeypatch):
    """The CPU model's linear-address width for the emu guests of this test."""
    from x86vm.cpu.core import Cpu

    monkeypatch.setattr(Cpu, "max_linear_bits", request.param)
    return request.param


def _run(body: str) -> list[int]:
    from test_cpu_msr_nmi import _run64

    values, reason = _run64("emu", body)
    return values


def _wrmsr_readback(msr: int, value: int) -> str:
    return (f"mov ${msr:#x}, %ecx; mov ${value & 0xFFFFFFFF:#x}, %eax; "
            f"mov ${value >> 32:#x}, %edx; wrmsr; rdmsr; out %eax, $0xe0; "
            "mov %edx, %eax; out %eax, $0xe0")


MSRS = {"FS_BASE": 0xC0000100, "GS_BASE": 0xC0000101, "KERNEL_GS_BASE": 0xC0000102,
        "LSTAR": 0xC0000082, "CSTAR": 0xC0000083, "SYSENTER_ESP": 0x175, "SYSENTER_EIP": 0x176}


@pytest.mark.parametrize("model", [57, 48], indirect=True)
@pytest.mark.parametrize("name", sorted(MSRS))
def test_wrmsr_takes_addresses_canonical_at_the_models_width(model, name):
    """4-level paging (CR4.LA57 = 0) throughout: the 57-bit model takes a 57-bit-canonical
    address, the 48-bit one raises #GP(0); neither takes a non-canonical one."""
    values = _run(_wrmsr_readback(MSRS[name], CANONICAL_57))
    if model == 57:
        assert values == [CANONICAL_57 & 0xFFFFFFFF, CANONICAL_57 >> 32, 0x600D]
    else:
        assert values == [0xBAD, 0]
    assert _run(_wrmsr_readback(MSRS[name], NON_CANONICAL)) == [0xBAD, 0]


@pytest.mark.parametrize("model", [57, 48], indirect=True)
@pytest.mark.parametrize("mnemonic", ["lgdt", "lidt"])
def test_descriptor_table_bases_canonical_at_the_models_width(model, mnemonic):
    from test_cpu_cr4_canonical import _table

    # store it back (SGDT/SIDT) to see it was taken; the table is not used before that
    body = _table(mnemonic, CANONICAL_57).replace("add $16, %rsp", f"""
        s{mnemonic[1:]} (%rsp)
        mov 2(%rsp), %rax
        shr $32, %rax
        out %eax, $0xe0
        add $16, %rsp""")
    assert _run(body) == ([CANONICAL_57 >> 32, 0x600D] if model == 57 else [0xBAD, 0])


@pytest.mark.parametrize("model", [57, 48], indirect=True)
@pytest.mark.parametrize(("kind", "load"), [(9, "ltr"), (2, "lldt")])
def test_system_segment_bases_canonical_at_the_models_width(model, kind, load):
    from test_cpu_cr4_canonical import _system_descriptor

    values = _run(_system_descriptor(kind, CANONICAL_57, load))
    assert values == ([0x600D] if model == 57 else [0xBAD, 0x40])


@pytest.mark.parametrize("model", [57, 48], indirect=True)
def test_cpuid_reports_the_models_width(model):
    body = """
        mov $7, %eax
        xor %ecx, %ecx
        cpuid
        mov %ecx, %eax
        shr $16, %eax
        and $1, %eax
        out %eax, $0xe0
        mov $0x80000008, %eax
        cpuid
        shr $8, %eax
        and $0xff, %eax
        out %eax, $0xe0"""
    assert _run(body) == [int(model == 57), model, 0x600D]


@pytest.mark.parametrize("model", [57, 48], indirect=True)
def test_cr4_la57_outside_ia32e_mode_only_on_a_57_bit_model(model):
    """Protected mode without paging: MOV to CR4 sets LA57 on the 57-bit model; on the
    48-bit one the bit is reserved, #GP(0) — with no IDT here, a triple fault."""
    from cpu.asmguest import assemble, run_guest

    code = assemble("""
        mov %cr4, %eax
        bts $12, %eax
        mov %eax, %cr4
        mov %cr4, %eax
        out %eax, $0xe0
        hlt""", 32, 0x10000)
    result, port, _, _ = run_guest("emu", code, 32, 0x10000)
    values = [v for _, _, _, v in port.log]
    if model == 57:
        assert values == [0x1000], result.reason
    else:
        assert values == [] and "triple fault" in result.reason, result.reason
