"""AMD SVM on the Python CPU (cpu/svm.py) against QEMU TCG (``-cpu max,+svm``) as the oracle:
one 32-bit Multiboot guest runs a nested guest through VMRUN/#VMEXIT round trips and prints
what the VMCB says on COM1; x86vm's emu (``--cpu-features +svm``) must print the same.

Plus what QEMU cannot be asked: the checks on guest-supplied state (a VMCB outside RAM, SVM
instructions without SVM) end in guest-visible faults, never in a monitor error.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import assembler_missing, serial_hex_report
from guests.oracle import QEMU_BASE, qemu_available
from x86vm.cpu.cpuid import CpuFeatures
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine.boot import load_image
from x86vm.machine.vm import Machine

pytestmark = pytest.mark.skipif(assembler_missing() is not None,
                                reason=str(assembler_missing()))

VMCB, HSAVE, SAVEAREA = 0x80000, 0x81000, 0x82000

# L1: flat 32-bit protected mode, its own GDT and an IDT whose #GP/#UD handlers print the
# vector and the error code and skip the 3-byte instruction. Each round trip: VMRUN, then
# print the exit code (low, high), EXITINFO1, the guest RIP saved relative to guest_base, the
# saved guest EAX; the host then steps the guest past the instruction (NRIP - RIP = its
# length is printed too).
PROLOGUE = r"""
    .text
    .align 4
    .long 0x1badb002, 0, -0x1badb002
    .globl _start
_start:
    lgdt gdtr
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $0x60000, %esp
    mov $de_handler, %eax
    mov $idt, %edi
    call set_gate
    mov $fault_ud, %eax
    mov $(idt + 6 * 8), %edi
    call set_gate
    mov $fault_gp, %eax
    mov $(idt + 13 * 8), %edi
    call set_gate
    lidt idtr
"""
# VM_HSAVE_PA = HSAVE, then EFER.SVME (APM Vol. 2 §15.4, §15.30.4)
ENABLE_SVM = r"""
    mov $0xc0010117, %ecx
    mov $HSAVE, %eax
    xor %edx, %edx
    wrmsr
    mov $0xc0000080, %ecx
    rdmsr
    or $0x1000, %eax
    wrmsr
"""

VMCB_SETUP = r"""
    /* the VMCB: zero, intercepts, guest state = this world */
    mov $VMCB, %edi
    mov $1024, %ecx
    xor %eax, %eax
    rep stosl
    movl $((1 << 6) | (1 << 13)), VMCB + 0x08           /* #UD, #GP */
    movl $((1 << 18) | (1 << 24)), VMCB + 0x0c          /* CPUID, HLT */
    movl $0x3, VMCB + 0x10                               /* VMRUN, VMMCALL */
    movl $1, VMCB + 0x58                                 /* ASID */
    movl $0x0c930010, VMCB + 0x400                       /* ES */
    movl $0xffffffff, VMCB + 0x404
    movl $0x0c9b0008, VMCB + 0x410                       /* CS */
    movl $0xffffffff, VMCB + 0x414
    movl $0x0c930010, VMCB + 0x420                       /* SS */
    movl $0xffffffff, VMCB + 0x424
    movl $0x0c930010, VMCB + 0x430                       /* DS */
    movl $0xffffffff, VMCB + 0x434
    movl $(gdt_end - gdt - 1), VMCB + 0x464
    movl $gdt, VMCB + 0x468
    movl $(idt_end - idt - 1), VMCB + 0x484
    movl $idt, VMCB + 0x488
    mov $0xc0000080, %ecx
    rdmsr
    mov %eax, VMCB + 0x4d0
    mov %cr0, %eax
    mov %eax, VMCB + 0x558
    movl $0x400, VMCB + 0x560                            /* DR7 */
    movl $0xffff0ff0, VMCB + 0x568                       /* DR6 */
    movl $2, VMCB + 0x570                                /* RFLAGS */
    movl $guest_base, VMCB + 0x578
    movl $0x70000, VMCB + 0x5d8                          /* RSP */
    movl $0x1234, VMCB + 0x5f8                           /* RAX */
"""
SVM_BODY = r"""
    /* CPUID: SVM bit (0x80000001 ECX[2]) and the maximum extended leaf >= 0x8000000A */
    mov $0x80000001, %eax
    cpuid
    mov %ecx, %eax
    shr $2, %eax
    and $1, %eax
    call report
    mov $0x80000000, %eax
    cpuid
    cmp $0x8000000a, %eax
    setae %al
    movzbl %al, %eax
    call report
    /* VMRUN with EFER.SVME clear: #UD */
    mov $VMCB, %eax
    vmrun
    /* VM_HSAVE_PA, EFER.SVME */
""" + ENABLE_SVM + r"""    rdmsr
    call report
    /* VM_HSAVE_PA not page aligned: #GP(0) (skips 2 bytes: wrmsr) */
    movb $2, skip
    mov $0xc0010117, %ecx
    mov $(HSAVE + 8), %eax
    xor %edx, %edx
    wrmsr
    movb $3, skip
""" + VMCB_SETUP + r"""
    mov $0x8000000a, %eax            /* NRIPS: EDI = 1 if CPUID reports it */
    cpuid
    mov %edx, %edi
    shr $3, %edi
    and $1, %edi
    mov $5, %esi                     /* #UD, CPUID, #GP, VMMCALL, HLT exits */
2:  call round_trip
    dec %esi
    jnz 2b
    /* an injected #DE (EVENTINJ: valid, exception, vector 0): not intercepted, the guest's
       IDT[0] runs: it does VMMCALL with EAX = 0xde */
    movl $0x80000300, VMCB + 0xa8
    call round_trip
    mov VMCB + 0xa8, %eax            /* EVENTINJ cleared by the #VMEXIT */
    call report
    /* VMEXIT_INVALID: ASID 0 */
    movl $0, VMCB + 0x58
    call round_trip
    movl $1, VMCB + 0x58
    /* a triple fault in the guest (#UD not intercepted, IDT limit 0) with the shutdown
       intercept: exit 7FH */
    movl $0, VMCB + 0x08
    orl $(1 << 31), VMCB + 0x0c
    movl $0, VMCB + 0x484
    movl $guest_base, VMCB + 0x578
    mov $VMCB, %eax
    vmrun
    mov VMCB + 0x70, %eax
    call report
    mov VMCB + 0x578, %eax
    sub $guest_base, %eax
    call report
    /* VMRUN with an unaligned VMCB address: #GP(0) */
    mov $(VMCB + 16), %eax
    vmrun
    /* VMSAVE: FS of this world (selector, attributes, limit), then VMLOAD it back */
    mov $0x10, %ax
    mov %ax, %fs
    mov $SAVEAREA, %eax
    vmsave
    mov SAVEAREA + 0x440, %eax
    call report
    mov SAVEAREA + 0x444, %eax
    call report
    xor %eax, %eax
    mov %ax, %fs
    mov $SAVEAREA, %eax
    vmload
    mov %fs, %eax
    movzwl %ax, %eax
    call report
    /* STGI / CLGI run */
    clgi
    stgi
    mov $0x600d, %eax
    call report
    jmp done

round_trip:
    mov $VMCB, %eax
    vmrun
    mov VMCB + 0x70, %eax
    call report
    cmp $0xffffffff, %eax            /* VMEXIT_INVALID: the save area is not defined */
    je 5f
    mov VMCB + 0x74, %eax
    call report
    mov VMCB + 0x78, %eax
    call report
    mov VMCB + 0x578, %eax
    sub $guest_base, %eax
    call report
    mov VMCB + 0x5f8, %eax
    call report
    mov round, %ebx                  /* the intercepted instruction's length */
    movzbl lengths(%ebx), %ecx
    incl round
    test %edi, %edi                  /* NRIPS: NRIP = RIP + length (instruction */
    jz 3f                            /* intercepts), 0 (exceptions) */
    mov VMCB + 0xc8, %eax
    sub VMCB + 0x578, %eax
    cmpb $0, nrip_set(%ebx)
    jne 6f
    mov VMCB + 0xc8, %eax
    xor %ecx, %eax
6:  cmp %ecx, %eax
    jne 7f
    mov round, %ebx
    movzbl lengths - 1(%ebx), %ecx
    jmp 3f
7:  mov $0xbad, %eax
    call report
3:  add %ecx, VMCB + 0x578           /* past the intercepted instruction */
5:  ret

round: .long 0
lengths: .byte 2, 2, 2, 3, 1, 3
nrip_set: .byte 0, 1, 0, 1, 1, 1

guest_base:
    ud2
    mov $0x80000001, %eax
    cpuid
    mov $0x18, %eax                  /* a selector beyond the GDT limit: #GP(18H) */
    mov %ax, %ds
    mov $0x55, %eax
    vmmcall
    hlt
    hlt

"""
EPILOGUE = r"""
de_handler:
    mov $0xde, %eax
    vmmcall

fault_ud:
    push $0
    push $6
    jmp fault
fault_gp:
    push $13
fault:
    mov (%esp), %eax
    call report
    mov 4(%esp), %eax
    call report
    add $8, %esp
    movzbl skip, %eax
    add %eax, (%esp)
    iret

set_gate:                        /* a 32-bit interrupt gate at EDI to EAX */
    movw %ax, (%edi)
    movw $0x08, 2(%edi)
    movw $0x8e00, 4(%edi)
    shr $16, %eax
    movw %ax, 6(%edi)
    ret

skip: .byte 3
    .align 8
gdt:
    .quad 0
    .quad 0x00cf9b000000ffff
    .quad 0x00cf93000000ffff
gdt_end:
gdtr: .word gdt_end - gdt - 1
    .long gdt
idt:
    .fill 48, 8, 0
idt_end:
idtr: .word idt_end - idt - 1
    .long idt
"""

# without SVM (QEMU: -cpu max,-svm): no CPUID bit, VMRUN and VMMCALL... #UD
NO_SVM_BODY = r"""
    mov $0x80000001, %eax
    cpuid
    mov %ecx, %eax
    and $4, %eax
    call report
    mov $VMCB, %eax
    vmrun
    vmload
    clgi
    jmp done
"""

# A physical interrupt in guest mode with the INTR intercept and V_INTR_MASKING: #VMEXIT 60H
# with the IRQ still pending; GIF = 0 after the exit holds it although IF = 1; STGI lets it
# in (PIT channel 0 through the 8259 at vector 20H).
INTR_BODY = r"""
    mov $0x11, %al
    out %al, $0x20
    out %al, $0xa0
    mov $0x20, %al
    out %al, $0x21
    mov $0x28, %al
    out %al, $0xa1
    mov $4, %al
    out %al, $0x21
    mov $2, %al
    out %al, $0xa1
    mov $1, %al
    out %al, $0x21
    out %al, $0xa1
    mov $0xfe, %al
    out %al, $0x21
    mov $0xff, %al
    out %al, $0xa1
    mov $irq_handler, %eax
    mov $(idt + 0x20 * 8), %edi
    call set_gate
""" + ENABLE_SVM + VMCB_SETUP + r"""
    movl $1, VMCB + 0x0c                                 /* INTR */
    movl $(1 << 24), VMCB + 0x60                         /* V_INTR_MASKING */
    movl $spin, VMCB + 0x578
    mov $0x34, %al                   /* PIT channel 0: mode 2, 1000 ticks */
    out %al, $0x43
    mov $0xe8, %al
    out %al, $0x40
    mov $0x03, %al
    out %al, $0x40
    clgi
    sti
    mov $VMCB, %eax
    vmrun
    mov VMCB + 0x70, %eax
    call report
    mov VMCB + 0x578, %eax
    sub $spin, %eax
    call report
    mov irq_count, %eax
    call report
    mov $1000, %ecx
1:  loop 1b
    mov irq_count, %eax
    call report
    stgi
    nop
    nop
    cli
    mov irq_count, %eax              /* delivered at all (the PIT may tick again meanwhile, */
    test %eax, %eax                  /* on QEMU's host clock: how often is timing) */
    setnz %al
    movzbl %al, %eax
    call report
    jmp done
guest_base:
spin:
    jmp spin
irq_handler:
    incl irq_count
    push %eax
    mov $0x20, %al
    out %al, $0x20
    pop %eax
    iret
irq_count: .long 0
"""

# a model without RDTSCP and XSAVE (QEMU: -cpu max,-rdtscp,-xsave): no CPUID bits, RDTSCP and
# XSETBV #UD
NO_RDTSCP_XSAVE_BODY = r"""
    mov $0x80000001, %eax
    cpuid
    mov %edx, %eax
    shr $27, %eax
    and $1, %eax
    call report
    mov $1, %eax
    cpuid
    mov %ecx, %eax
    shr $26, %eax
    and $1, %eax
    call report
    rdtscp
    xor %ecx, %ecx
    xsetbv
    jmp done
"""

# What QEMU does not model the APM's way (it ignores EFER bits it does not support and keeps
# VM_HSAVE_PA without SVM; it reads a VMCB from anywhere): x86vm's model, from the APM.
# Without SVM: VM_HSAVE_PA and setting EFER.SVME are #GP(0) (MBZ bit, APM Vol. 2 §3.1.7).
NO_SVM_MSRS_BODY = r"""
    movb $2, skip
    mov $0xc0010117, %ecx
    rdmsr
    mov $0xc0000080, %ecx
    rdmsr
    or $0x1000, %eax
    wrmsr
    rdmsr
    call report
    jmp done
"""
NO_SVM_MSRS_OUTPUT = "0000000d\n00000000\n0000000d\n00000000\n00000000\n"
# With SVM: a VMCB or host save area that is not RAM (here: beyond the 128 MiB of RAM, below
# the 40-bit physical limit) is #GP(0), as is VM_HSAVE_PA beyond the limit; VM_CR.SVMDIS
# with EFER.SVME set is #GP(0) (APM §15.30.1); the machine goes on.
SVM_HOSTILE_BODY = r"""
    mov $0xc0000080, %ecx
    rdmsr
    or $0x1000, %eax
    wrmsr
    mov $0x40000000, %eax            /* a VMCB no RAM backs */
    vmrun
    vmsave
    movb $2, skip
    mov $0xc0010117, %ecx            /* VM_HSAVE_PA beyond 40 physical address bits */
    xor %eax, %eax
    mov $0x100, %edx
    wrmsr
    mov $0xc0010114, %ecx            /* VM_CR.SVMDIS while EFER.SVME = 1 */
    mov $0x10, %eax
    xor %edx, %edx
    wrmsr
    mov $0x600d, %eax
    call report
    jmp done
"""
SVM_HOSTILE_OUTPUT = "0000000d\n00000000\n" * 4 + "0000600d\n"
# Without XSAVE, CR4.OSXSAVE is reserved: #GP(0) (SDM Vol. 3A §2.5; QEMU drops the bit)
NO_XSAVE_CR4_BODY = r"""
    mov %cr4, %eax
    or $(1 << 18), %eax
    mov %eax, %cr4
    mov %cr4, %eax
    call report
    jmp done
"""

REPORT = serial_hex_report(32) + """
done:
    mov $0x10, %al
    out %al, $0xf4
    hlt
"""


def build(tmp: Path, body: str = SVM_BODY) -> bytes:
    text = (".code32\n" + f".set VMCB, {VMCB:#x}\n.set HSAVE, {HSAVE:#x}\n"
            f".set SAVEAREA, {SAVEAREA:#x}\n" + PROLOGUE + body + EPILOGUE + REPORT)
    (tmp / "g.S").write_text(text)
    for cmd in (["as", "--32", "-o", str(tmp / "g.o"), str(tmp / "g.S")],
                ["ld", "-m", "elf_i386", "-Ttext", "0x10000", "-e", "_start", "-o",
                 str(tmp / "g.elf"), str(tmp / "g.o")]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr)
    return (tmp / "g.elf").read_bytes()


def on_emu(image: bytes, features: str | None = "+svm") -> tuple[int, str]:
    console = BufferConsole()
    options = {"cpu_features": features} if features else {}
    with Machine(memory_size=128 << 20, backend="emu", **options) as m:
        attach_pc_devices(m, console, debug_exit_port=0xF4)
        result = m.run(load_image(m.memory, image, "multiboot", cmdline="k.elf"), timeout=30)
    return result.status, bytes(console.output).decode("latin-1")


def on_qemu(image: bytes, tmp: Path, cpu: str) -> tuple[int, str]:
    (tmp / "k.elf").write_bytes(image)
    proc = subprocess.run([*QEMU_BASE, "-cpu", cpu, "-kernel", "k.elf"], cwd=tmp,
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return proc.returncode, (tmp / "serial.out").read_bytes().decode("latin-1")


@pytest.mark.skipif(not qemu_available(), reason="qemu-system-x86_64 is not installed")
@pytest.mark.parametrize("body, qemu_cpu, features, lines", [
    (SVM_BODY, "max,+svm", "+svm", 47), (NO_SVM_BODY, "max,-svm", None, 7),
    (NO_RDTSCP_XSAVE_BODY, "max,-rdtscp,-xsave", "-rdtscp,-xsave", 6),
    (INTR_BODY, "max,+svm", "+svm", 5)],
    ids=["svm", "no-svm", "no-rdtscp-xsave", "intr-intercept"])
def test_svm_guest_matches_qemu(body, qemu_cpu, features, lines):
    """VMRUN/#VMEXIT round trips: #UD and #GP (error code 18H) exception intercepts, CPUID,
    VMMCALL and HLT instruction intercepts, an injected #DE, VMEXIT_INVALID (ASID 0), the
    shutdown intercept, #GP for an unaligned VMCB, VMSAVE/VMLOAD, STGI/CLGI — and without
    SVM the #UD and #GP(0) a CPU without it gives."""
    with tempfile.TemporaryDirectory() as tmp:
        image = build(Path(tmp), body)
        expected = on_qemu(image, Path(tmp), qemu_cpu)
    assert expected[0] == 33 and expected[1].count("\n") == lines, expected
    assert on_emu(image, features) == expected


@pytest.mark.parametrize("body, features, output", [
    (NO_SVM_MSRS_BODY, None, NO_SVM_MSRS_OUTPUT), (SVM_HOSTILE_BODY, "+svm", SVM_HOSTILE_OUTPUT),
    (NO_XSAVE_CR4_BODY, "-xsave", "0000000d\n00000000\n00000000\n")],
    ids=["no-svm-msrs", "svm-bad-addresses", "no-xsave-cr4"])
def test_guest_supplied_svm_state_is_checked(body, features, output):
    with tempfile.TemporaryDirectory() as tmp:
        image = build(Path(tmp), body)
    assert on_emu(image, features) == (33, output)


def test_cpu_features_parse_and_cpuid():
    f = CpuFeatures.parse("+svm,-rdtscp,-xsave,-invpcid,-skinit")
    assert f.has("svm") and f.absent_instructions == {"RDTSCP", "XSAVE", "INVPCID", "SKINIT"}
    assert f.adjust(0x80000001, 0, (0, 0, 0, 1 << 27)) == (0, 0, 1 << 2, 0)
    assert f.adjust(0x80000000, 0, (0x80000008, 0, 0, 0))[0] == 0x8000000A
    assert f.adjust(0xD, 0, (3, 576, 576, 0)) == (0, 0, 0, 0)
    for bad in ("+npt", "+invpcid", "frobnicate"):
        with pytest.raises(ValueError):
            CpuFeatures.parse(bad)


L1_VMRUN = f"""
    mov $0xc0000080, %ecx
    rdmsr
    or $0x1000, %eax
    wrmsr
    mov $0xc0010117, %ecx
    mov ${HSAVE:#x}, %eax
    xor %edx, %edx
    wrmsr
    mov ${VMCB:#x}, %eax
    vmrun
    hlt
"""


@pytest.mark.parametrize("seed", range(16))
def test_random_vmcb_never_breaks_the_emulator(seed):
    """A VMCB of random bytes (half of them with the bits VMRUN's checks demand, so that the
    random guest state is loaded and runs): VMEXIT_INVALID, an intercept, a fault, a halt or
    the timeout — never an emulator error."""
    from dataclasses import replace

    from cpu.asmguest import assemble, entry_for

    rng = random.Random(seed)
    bits = (32, 64)[seed % 2]
    vmcb = bytearray(rng.randbytes(4096))
    if seed % 4 < 2:   # get past the consistency checks
        if seed & 4:                                      # every exception
            vmcb[0x08:0x0C] = (0xFFFFFFFF).to_bytes(4, "little")
        vmcb[0x578:0x580] = (0x20000 + rng.randrange(0x10000)).to_bytes(8, "little")   # RIP
        vmcb[0x10] |= 1                                   # VMRUN intercept
        vmcb[0x0F] |= 0x80                                # shutdown intercept
        vmcb[0x40:0x50] = bytes(16)                       # IOPM, MSRPM bases
        vmcb[0x58:0x5C] = (1).to_bytes(4, "little")        # ASID
        vmcb[0xAB] &= 0x7F                                # no EVENTINJ
        efer = 0x1000 | (0x500 if seed & 8 else 0)
        vmcb[0x4D0:0x4D8] = efer.to_bytes(8, "little")
        cr0 = 0x80000011 if seed & 8 else rng.choice((0x10, 0x11))
        vmcb[0x558:0x560] = cr0.to_bytes(8, "little")
        vmcb[0x548:0x550] = (0x20 if seed & 8 else 0).to_bytes(8, "little")
        vmcb[0x550:0x558] = (0x1000 if seed & 8 else 0).to_bytes(8, "little")
        vmcb[0x560:0x570] = (0x400).to_bytes(8, "little") + (0xFFFF0FF0).to_bytes(8, "little")
        vmcb[0x413] &= 0xF9 if seed & 8 else 0xFF         # not both CS.L and CS.D
    origin = 0x10000
    with Machine(memory_size=4 << 20, backend="emu", cpu_features="+svm") as m:
        m.memory.write(origin, assemble(L1_VMRUN, bits, origin))
        m.memory.write(VMCB, bytes(vmcb))
        m.memory.write(0x20000, rng.randbytes(0x10000))   # random code for the guest
        entry = entry_for(m.memory, bits, origin)
        if bits == 64:
            for at, value in ((0x1000, 0x2003), (0x2000, 0x3003), (0x3000, 0x83),
                              (0x3008, 0x200083)):
                m.memory.write_u64(at, value)
            entry = replace(entry, cr3=0x1000)
        result = m.run(entry, timeout=0.3)
    assert result.status not in (126, 127), result.reason
