"""``x86vm kvm-probe``: the host capability probes run and report."""

import subprocess

import pytest

from support.oracles import require
from test_kvm_support import requires_kvm
from x86vm.cli import kvm_probe as probe
from x86vm.cli import main

pytestmark = requires_kvm()


@pytest.fixture(scope="module")
def results():
    return probe.probe()


def test_every_probe_reports(results):
    assert list(results) == ["xgetbv (XSAVE family)", "int3", "int3 with the backend's fix",
                             "int $0x80", "syscall from ring 3", "CPUID feature masking",
                             "single step", "single step after an I/O exit",
                             "breakpoint (debug register)",
                             "resume from a breakpoint (RFLAGS.RF)", "data watchpoint",
                             "int3 interception"]
    assert all(isinstance(v, str) and v for v in results.values())


def test_the_debug_controls_every_kvm_has_work_here(results):
    for name in ("single step", "single step after an I/O exit",
                 "breakpoint (debug register)", "int3 interception"):
        assert results[name] == "ok", (name, results[name])


def test_kvm_probe_is_a_cli_command(monkeypatch, capsys):
    monkeypatch.setattr(probe, "probe", lambda: {"a probe": "ok", "another": "broken"})
    assert main(["kvm-probe"]) == 1
    assert capsys.readouterr().out.splitlines() == ["a probe  ok", "another  broken"]


def test_int3_reaches_the_guest_handler_with_the_backend_fix(results):
    assert results["int3 with the backend's fix"] == "ok"


@pytest.mark.parametrize("code, mnemonics", [
    ("HANDLER_CODE", ["mov %cs,%eax", "out %eax,$0x80", "mov $0x0,%al", "out %al,$0xf4"]),
    ("XGETBV", ["xor %ecx,%ecx", "xgetbv", "mov $0x0,%al", "out %al,$0xf4"]),
    ("INT3", ["int3", "hlt"]),
    ("INT80", ["int $0x80", "hlt"]),
    ("SYSCALL_USER", ["syscall"]),
    ("SYSCALL_SETUP", ["mov $0xc0000080,%ecx", "rdmsr", "or $0x1,%eax", "wrmsr",
                       "mov $0xc0000081,%ecx", "xor %eax,%eax", "mov $0x180010,%edx", "wrmsr",
                       "mov $0xc0000082,%ecx", "mov $0x10100,%eax", "xor %edx,%edx", "wrmsr",
                       "mov $0x10200,%rcx", "mov $0x2,%r11", "sysretq"]),
    ("DEBUG_CODE", ["nop", "out %al,$0x80", "nop", "mov %eax,0x10100", "int3", "hlt"]),
    ("CPUID_ECX", ["mov $0x1,%eax", "xor %ecx,%ecx", "cpuid", "mov %ecx,%eax",
                   "out %eax,$0x80", "mov $0x0,%al", "out %al,$0xf4"]),
])
def test_probe_machine_code_disassembles_to_its_comments(tmp_path, code, mnemonics):
    """objdump is the oracle for the hand-written byte strings."""
    require("objdump-2.40")
    blob = tmp_path / "code.bin"
    blob.write_bytes(getattr(probe, code))
    out = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", str(blob)],
                         capture_output=True, text=True, check=True).stdout
    lines = [line.split("\t")[2] for line in out.splitlines() if line.count("\t") >= 2]
    assert [" ".join(x.split()) for x in lines] == mnemonics
