"""scripts/kvm-unit-tests: the unittests.cfg reader, the verdicts and the command lines
(kvm-unit-tests' own x86/run is the model: pc-testdev, isa-debug-exit at 0xf4, -kernel)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "kvm-unit-tests"


def load():
    loader = importlib.machinery.SourceFileLoader("kvm_unit_tests", str(SCRIPT))
    spec = importlib.util.spec_from_loader("kvm_unit_tests", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kvm_unit_tests"] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


CFG = """\
##############################################################################
# unittest configuration
##############################################################################

[ioapic]
file = ioapic.flat
smp = 4
qemu_params = -cpu qemu64,+x2apic
arch = x86_64

[vmexit_cpuid]
file = vmexit.flat
test_args = 'cpuid'
groups = vmexit

[sieve]
file = sieve.flat
timeout = 180

[pmu]
file = pmu.flat
accel = kvm
groups = pmu nodefault
"""


def test_cfg_fields(tmp_path):
    kut = load()
    (tmp_path / "unittests.cfg").write_text(CFG)
    tests = {t.name: t for t in kut.parse_cfg(tmp_path / "unittests.cfg")}
    assert list(tests) == ["ioapic", "vmexit_cpuid", "sieve", "pmu"]
    assert (tests["ioapic"].smp, tests["ioapic"].arch) == (4, "x86_64")
    assert tests["vmexit_cpuid"].test_args == "cpuid" and tests["vmexit_cpuid"].smp == 1
    assert tests["sieve"].timeout == 180 and tests["pmu"].accel == "kvm"
    assert "nodefault" in tests["pmu"].groups


def test_verdicts():
    kut = load()
    assert kut.verdict(1, b"SUMMARY: 51 tests\n") == "PASS"
    assert kut.verdict(3, b"SUMMARY: 51 tests, 4 unexpected failures\n") == "FAIL 4/51"
    assert kut.verdict(155, b"") == "SKIP"
    assert kut.verdict(None, b"") == "TIMEOUT"
    assert kut.verdict(126, b"no summary") == "FAIL (126)"


def test_command_lines(tmp_path):
    kut = load()
    t = kut.UnitTest(name="vmexit_cpuid", file="vmexit.flat", test_args="cpuid",
                     qemu_params="-cpu qemu64,+x2apic -m 2048")
    kernel = tmp_path / "vmexit.flat"
    qemu = kut.qemu_command(t, kernel, "tcg")
    assert qemu[:3] == ["qemu-system-x86_64", "--no-reboot", "-nodefaults"]
    assert "isa-debug-exit,iobase=0xf4,iosize=0x4" in qemu and "accel=tcg" in qemu
    assert qemu[-2:] == ["-append", "cpuid"]
    x86vm = kut.x86vm_command(t, kernel, "kvm-user", 30)
    assert x86vm[x86vm.index("--backend") + 1] == "kvm"
    assert x86vm[x86vm.index("--irqchip") + 1] == "user" and "--testdev" in x86vm
    assert x86vm[x86vm.index("-m", 3) + 1] == "2048M" and x86vm[-3:] == ["--cmdline", "cpuid",
                                                                        str(kernel)]


def test_the_cpu_vendor_of_qemu_params_is_passed_to_x86vm(tmp_path):
    # syscall's cfg entry: compatibility-mode SYSCALL is AMD's (x86vm --cpu-vendor)
    kut = load()
    t = kut.UnitTest(name="syscall", file="syscall.flat",
                     qemu_params="-cpu Opteron_G1,vendor=AuthenticAMD")
    cmd = kut.x86vm_command(t, tmp_path / "syscall.flat", "emu", 30)
    assert cmd[cmd.index("--cpu-vendor") + 1] == "AuthenticAMD"
    plain = kut.UnitTest(name="umip", file="umip.flat", qemu_params="-cpu qemu64,+umip")
    assert "--cpu-vendor" not in kut.x86vm_command(plain, tmp_path / "umip.flat", "kvm", 30)
