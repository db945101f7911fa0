"""CLFLUSH, CLFLUSHOPT and CLWB (kvm-unit-tests memory): the faults of a byte load at the
address and nothing else (SDM Vol. 2A); CPUID reports them with a 64-byte line. This host's
CPU (through KVM) runs the same guests as the oracle."""

# ruff: noqa: F811  (the tests take the imported ``backend`` fixture by its name)
from __future__ import annotations

import pytest

from cpu.asmguest import assemble, run_guest
from test_cpu_msr_nmi import backend  # noqa: F401
from test_cpu_pkeys import _GUEST, _map

UNMAPPED = 0x800000
INSTRUCTIONS = ("clflush", "clflushopt", "clwb")


def _skip_kvm_clwb(backend: str, name: str) -> None:
    if backend == "kvm" and name == "clwb":
        pytest.skip("this host's software KVM stops at CLWB (KVM internal error: emulation "
                    "failure); CLFLUSH and CLFLUSHOPT are its oracle")


def _run(backend: str, body: str) -> list[int]:
    code = assemble(_GUEST.format(body=body), 64, 0x10000)
    _, port, _, _ = run_guest(backend, code, 64, 0x10000, setup=_map)
    return [v for _, _, _, v in port.log]


@pytest.mark.parametrize("name", sorted(INSTRUCTIONS))
def test_flush_of_mapped_memory_changes_nothing(backend, name):
    _skip_kvm_clwb(backend, name)
    body = f"""movl $0x12345678, 0x3000
        mov $0x3000, %rax
        {name} (%rax)
        mov 0x3000, %eax
        out %eax, $0xe0"""
    assert _run(backend, body) == [0x12345678, 0x600D]


@pytest.mark.parametrize("name", sorted(INSTRUCTIONS))
def test_flush_of_an_unmapped_address_is_a_read_page_fault(backend, name):
    _skip_kvm_clwb(backend, name)
    body = f"mov ${UNMAPPED + 0x40:#x}, %rax; {name} (%rax)"
    assert _run(backend, body) == [0x14, 0, UNMAPPED + 0x40]


def test_cpuid_reports_the_flushes():
    # x86vm's own model (on KVM the CPUID is KVM's filter of it): CLFSH with a 64-byte line,
    # CLFLUSHOPT and CLWB
    body = """mov $1, %eax; cpuid; mov %edx, %eax; out %eax, $0xe0; mov %ebx, %eax
        out %eax, $0xe0; mov $7, %eax; xor %ecx, %ecx; cpuid; mov %ebx, %eax; out %eax, $0xe0"""
    edx1, ebx1, ebx7 = _run("emu", body)[:3]
    assert edx1 >> 19 & 1 and (ebx1 >> 8) & 0xFF == 8
    assert ebx7 >> 23 & 1 and ebx7 >> 24 & 1
