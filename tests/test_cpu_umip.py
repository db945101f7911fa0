"""UMIP (CR4 bit 11, CPUID.7.0:ECX[2]): SGDT, SIDT, SLDT, SMSW and STR are #GP(0) at CPL > 0
and run as before at CPL 0 (SDM Vol. 3A §2.5; Vol. 2B "SGDT" ... "STR"). kvm-unit-tests umip
checks the same and QEMU TCG passes it here; this host's KVM cannot run the IRET to CPL 3
(tests/test_cpu_system.py), so the guest runs on emu."""

from __future__ import annotations

import pytest

from cpu.asmguest import assemble, assembler_missing, run_guest
from test_cpu_outer_return_gs import GUEST, _user_map

pytestmark = pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))


def _guest(cr4_umip: bool, user_insn: str) -> bytes:
    """The CPL-3 guest of test_cpu_outer_return_gs with ``user_insn`` instead of HLT; the
    #GP handler reports the vector and error code, no #GP reports 0x600d first (then HLT at
    CPL 3 ends the run through the handler)."""
    text = GUEST.replace("""    user:
        hlt                           /* #GP(0) at CPL 3: back to CPL 0 */""", f"""    user:
        {user_insn}
        mov $0x600d, %eax
        out %eax, $0xe0
        hlt                           /* #GP: the handler ends it */""").replace("""    handler:
        mov %gs, %eax""", """    handler:
        mov $0x13, %eax
        out %eax, $0xe0
        pop %rax                      /* the error code */
        out %eax, $0xe0
        cli
        hlt
        mov %gs, %eax""")
    if cr4_umip:
        text = text.replace("        lidt idtr(%rip)\n", "        lidt idtr(%rip)\n"
                            "        mov %cr4, %rax\n        or $0x800, %rax\n"
                            "        mov %rax, %cr4\n", 1)
    return assemble(text, 64, 0x10000)


USER_INSNS = ["sgdt 0x5000", "sidt 0x5000", "sldt %ax", "str %ax", "smsw %ax"]


@pytest.mark.parametrize("insn", USER_INSNS)
def test_umip_makes_the_store_instructions_gp_at_cpl3(insn):
    _, port, _, _ = run_guest("emu", _guest(True, insn), 64, 0x10000, setup=_user_map)
    assert [v for _, _, _, v in port.log] == [0x13, 0]


@pytest.mark.parametrize("insn", USER_INSNS)
def test_without_umip_they_run_at_cpl3(insn):
    _, port, _, _ = run_guest("emu", _guest(False, insn), 64, 0x10000, setup=_user_map)
    assert [v for _, _, _, v in port.log] == [0x600D, 0x13, 0]


def test_cpuid_reports_umip():
    body = "mov $7, %eax; xor %ecx, %ecx; cpuid; mov %ecx, %eax; out %eax, $0xe0; hlt"
    _, port, _, _ = run_guest("emu", assemble(body, 64, 0x10000), 64, 0x10000,
                              setup=_user_map)
    assert port.log[0][3] >> 2 & 1
