"""ACPI S3 (suspend to RAM) through the PM1 block, woken by the RTC alarm — what
kvm-unit-tests s3 checks (QEMU on this host's KVM passes it).

Oracles: the ACPI 6.4 register tables (§4.8.3.1 PM1 Status: RTC_STS bit 10, WAK_STS bit 15,
write 1 to clear; PM1 Enable: RTC_EN bit 10; §4.8.3.2 PM1 Control: SLP_TYP, SLP_EN) with
QEMU's ``\\_S3`` type 1, and ``qemu -kernel`` (SeaBIOS resumes at the FACS waking vector in
real mode) running the same Multiboot guest: equal exit status."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from cpu.asmguest import assembler_missing, multiboot_elf
from guests.oracle import qemu_available, qemu_serial
from support.backends import PLATFORMS
from x86vm.devices.acpi_pm import AcpiPm
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices
from x86vm.machine.boot import load_image
from x86vm.machine.vm import Machine

SLP_EN, S3 = 1 << 13, 1 << 10
RTC_STS = RTC_EN = 1 << 10
WAK_STS = 1 << 15


def test_s3_suspends_and_only_an_enabled_rtc_alarm_wakes():
    calls = []
    pm = AcpiPm(lambda: 0, lambda status, reason: calls.append("stop"),
                suspend=lambda: calls.append("suspend"), wake=lambda: calls.append("wake"))
    pm.rtc_alarm()                                  # awake: only RTC_STS
    assert pm.read(0, 2) == RTC_STS and calls == []
    pm.write(0, 2, RTC_STS)                         # write 1 to clear
    assert pm.read(0, 2) == 0
    pm.write(4, 2, SLP_EN | S3)
    assert calls == ["suspend"]
    pm.rtc_alarm()                                  # RTC_EN clear: no wake
    assert calls == ["suspend"] and pm.read(0, 2) == RTC_STS
    pm.write(2, 2, RTC_EN)
    pm.rtc_alarm()
    assert calls == ["suspend", "wake"] and pm.read(0, 2) == RTC_STS | WAK_STS
    pm.rtc_alarm()                                  # awake again: no second wake
    assert calls == ["suspend", "wake"]
    pm.write(0, 2, WAK_STS | RTC_STS)
    assert pm.read(0, 2) == 0


GUEST = r"""
    .text
    .code32
    .long 0x1badb002, 0, -0x1badb002          /* Multiboot header, no flags */
    .globl _start
_start:
    mov $0xe0000, %esi                        /* the RSDP: "RSD PTR " on 16 bytes */
1:  cmpl $0x20445352, (%esi)
    jne 2f
    cmpl $0x20525450, 4(%esi)
    je 3f
2:  add $16, %esi
    cmp $0x100000, %esi
    jb 1b
    jmp fail
3:  mov 16(%esi), %esi                        /* RSDT: find "FACP" */
    mov 4(%esi), %ecx
    add %esi, %ecx
    lea 36(%esi), %edi
4:  cmp %ecx, %edi
    jae fail
    mov (%edi), %ebp
    add $4, %edi
    cmpl $0x50434146, (%ebp)
    jne 4b
    mov 36(%ebp), %ebx                        /* FADT.FIRMWARE_CTRL: the FACS */
    movl $0x1000, 12(%ebx)                    /* its firmware waking vector */
    mov $resume, %esi
    mov $0x1000, %edi
    mov $resume_end - resume, %ecx
    rep movsb
    mov 56(%ebp), %edx                        /* PM1a_EVT_BLK + 2: PM1 enable */
    add $2, %edx
    mov $0x400, %ax                           /* RTC_EN */
    out %ax, %dx
    mov $0x01, %al                            /* RTC alarm: any second, minute, hour */
    out %al, $0x70
    mov $0xc0, %al
    out %al, $0x71
    mov $0x03, %al
    out %al, $0x70
    mov $0xc0, %al
    out %al, $0x71
    mov $0x05, %al
    out %al, $0x70
    mov $0xc0, %al
    out %al, $0x71
    mov $0x0b, %al                            /* register B: AIE */
    out %al, $0x70
    in $0x71, %al
    or $0x20, %al
    mov %al, %ah
    mov $0x0b, %al
    out %al, $0x70
    mov %ah, %al
    out %al, $0x71
    mov 64(%ebp), %edx                        /* PM1a_CNT_BLK: SLP_TYP 1 (S3), SLP_EN */
    mov $0x2400, %ax
    out %ax, %dx
    mov $1000000, %ecx                        /* still running: S3 did not happen */
5:  loop 5b
fail:
    mov $0x33, %al
    out %al, $0xf4
6:  hlt
    jmp 6b
    .code16
resume:                                       /* real mode, CS:IP = 0100:0000 */
    mov $0x42, %al
    out %al, $0xf4
7:  hlt
    jmp 7b
resume_end:
"""
RESUMED = (0x42 << 1) | 1


@pytest.fixture(scope="module")
def image():
    if assembler_missing() is not None:
        pytest.skip(str(assembler_missing()))
    with tempfile.TemporaryDirectory() as tmp:
        image = multiboot_elf(GUEST, Path(tmp), 0x200000)
        if qemu_available():   # the oracle: SeaBIOS resumes the guest at the waking vector
            assert qemu_serial(tmp, "-kernel", "k.elf")[0] == RESUMED
        return image


@pytest.mark.parametrize("backend", PLATFORMS)
def test_s3_resumes_at_the_facs_waking_vector(image, backend):
    name, options = backend
    try:
        Machine(memory_size=2 << 20, backend=name, **options).close()
    except Exception as exc:
        pytest.skip(f"backend {name} is not usable here: {exc}")
    with Machine(memory_size=64 << 20, backend=name, **options) as m:
        board = attach_pc_devices(m, BufferConsole(), debug_exit_port=0xF4, debug_exit_iosize=1)
        entry = load_image(m.memory, image, "multiboot", cmdline="k.elf",
                           **board.boot_options())
        result = m.run(entry, timeout=30)
        board.close()
    assert result.status == RESUMED, result.reason
