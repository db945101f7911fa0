"""The oracle gates themselves (tests/support): the raw KVM probe agrees with <linux/kvm.h>
and with x86vm's own KVM code, and X86VM_REQUIRE turns a missing oracle into a failure."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from support import kvm_probe, oracles


@pytest.mark.oracle("gcc")
def test_raw_probe_request_numbers_are_the_kernel_headers(tmp_path):
    source = tmp_path / "kvm.c"
    source.write_text(textwrap.dedent("""\
        #include <stdio.h>
        #include <linux/kvm.h>
        int main(void) {
            printf("%lu %lu %d\\n", (unsigned long)KVM_GET_API_VERSION,
                   (unsigned long)KVM_CREATE_VM, KVM_API_VERSION);
            return 0;
        }
        """))
    subprocess.run(["gcc", str(source), "-o", str(tmp_path / "kvm")], check=True)
    out = subprocess.run([str(tmp_path / "kvm")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(kvm_probe.KVM_GET_API_VERSION),
                                  str(kvm_probe.KVM_CREATE_VM), str(kvm_probe.KVM_API_VERSION)]


def test_raw_probe_rejects_a_device_that_is_not_kvm():
    reason = kvm_probe.raw_kvm_unusable_reason("/dev/null")
    assert reason is not None and "KVM_GET_API_VERSION" in reason
    assert "cannot open" in kvm_probe.raw_kvm_unusable_reason("/nonexistent/kvm")


@pytest.mark.kvm
def test_where_the_raw_probe_creates_a_vm_x86vm_does_too():
    """The gate is independent of the product; this ties them: a broken KVM_CREATE_VM in
    x86vm fails here instead of turning the KVM tests into skips."""
    from x86vm.machine.kvm.system import Kvm
    from x86vm.machine.vm import Machine

    kvm = Kvm()
    try:
        kvm.create_vm().close()
    finally:
        kvm.close()
    Machine(memory_size=2 << 20, backend="kvm").close()


def test_missing_oracle_skips_by_default(monkeypatch):
    monkeypatch.delenv(oracles.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="oracle 'qemu' missing: gone"):
        oracles.missing("qemu", "gone")


@pytest.mark.parametrize("wanted", ["qemu", "kvm,qemu", "all"])
def test_missing_required_oracle_fails_naming_it(monkeypatch, wanted):
    monkeypatch.setenv(oracles.REQUIRE_ENV, wanted)
    with pytest.raises(pytest.fail.Exception, match="X86VM_REQUIRE requires it: oracle 'qemu'"):
        oracles.missing("qemu", "gone")


def test_unknown_required_oracle_is_a_usage_error(monkeypatch):
    monkeypatch.setenv(oracles.REQUIRE_ENV, "kvm,qemu-9")
    with pytest.raises(pytest.UsageError, match="qemu-9"):
        oracles.required()


@pytest.mark.oracle("objdump-2.40")
def test_objdump_caches_are_keyed_by_its_version():
    from oracle import objdump

    line = oracles.objdump_version_line()
    assert line.endswith(" 2.40")
    assert line in objdump.cache_key_text(["-d"], "/bin/true")
