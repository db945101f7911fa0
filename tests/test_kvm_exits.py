"""Translation of every kvm_run exit reason into a backend-neutral exit object.

Exits that a guest cannot provoke on demand (failed VM entry, KVM internal errors, system
events) are checked by writing a ``struct kvm_run`` — built with the ctypes layout that
test_kvm_abi.py checks against the kernel headers — into a real vCPU's mapping and decoding it.
"""

import ctypes

import pytest

from test_kvm_support import requires_kvm
from x86vm.machine.exits import DebugStop, Hypercall, InternalError, MmioExit, Shutdown
from x86vm.machine.kvm import abi
from x86vm.machine.vm import Machine

pytestmark = requires_kvm()


@pytest.fixture(scope="module")
def vcpu():
    m = Machine(memory_size=1 << 20)
    yield m.backend.vcpu
    m.close()


def decode(vcpu, run: abi.KvmRun):
    vcpu.run_map[: ctypes.sizeof(run)] = bytes(run)
    return vcpu._other_exit(run.exit_reason)


def kvm_run(reason: int) -> abi.KvmRun:
    run = abi.KvmRun()
    run.exit_reason = reason
    return run


def test_failed_entry(vcpu):
    run = kvm_run(abi.KVM_EXIT_FAIL_ENTRY)
    run.exit.fail_entry.hardware_entry_failure_reason = 0x80000021  # invalid guest state
    ex = decode(vcpu, run)
    assert isinstance(ex, InternalError)
    assert ex.reason.startswith("VM entry failed: hardware entry failure reason 0x80000021 "
                                "at rip 0x")


def test_internal_error_with_data(vcpu):
    run = kvm_run(abi.KVM_EXIT_INTERNAL_ERROR)
    run.exit.internal.suberror, run.exit.internal.ndata = 1, 2
    run.exit.internal.data[0], run.exit.internal.data[1] = 0xAB, 0xCD
    ex = decode(vcpu, run)
    assert ex.reason.startswith("KVM internal error: emulation failure (data 0xab 0xcd) at rip")


def test_internal_error_ndata_is_bounded(vcpu):
    run = kvm_run(abi.KVM_EXIT_INTERNAL_ERROR)
    run.exit.internal.suberror, run.exit.internal.ndata = 77, 0xFFFFFFFF  # a lying kernel
    ex = decode(vcpu, run)
    assert "suberror 77" in ex.reason and ex.reason.count("0x0") >= 16


def test_unknown_exit_reasons_are_internal_errors(vcpu):
    ex = decode(vcpu, kvm_run(0x1234))
    assert isinstance(ex, InternalError) and "unexpected KVM exit exit reason 4660" in ex.reason
    ex = decode(vcpu, kvm_run(abi.KVM_EXIT_UNKNOWN))
    assert "unexpected KVM exit UNKNOWN" in ex.reason


def test_guest_exception(vcpu):
    run = kvm_run(abi.KVM_EXIT_EXCEPTION)
    run.exit.ex.exception, run.exit.ex.error_code = 13, 0x18
    assert "unhandled guest exception 13 (error code 0x18)" in decode(vcpu, run).reason


@pytest.mark.parametrize("kind, text", [(1, "shutdown"), (2, "reset"), (3, "crash")])
def test_system_events_are_shutdowns(vcpu, kind, text):
    run = kvm_run(abi.KVM_EXIT_SYSTEM_EVENT)
    run.exit.system_event.type = kind
    assert decode(vcpu, run) == Shutdown(f"system event: {text}")


def test_hypercall_arguments_and_return_value(vcpu):
    run = kvm_run(abi.KVM_EXIT_HYPERCALL)
    run.exit.hypercall.nr = 5
    run.exit.hypercall.args[:] = [1, 2, 3, 4, 5, 6]
    ex = decode(vcpu, run)
    assert ex == Hypercall(5, (1, 2, 3, 4, 5, 6))
    ex.ret = -1000
    vcpu.complete_io(ex)
    back = abi.KvmRun.from_buffer_copy(vcpu.run_map[: ctypes.sizeof(abi.KvmRun)])
    assert back.exit.hypercall.ret == 2**64 - 1000


def test_mmio_read_completion_lands_in_kvm_run(vcpu):
    run = kvm_run(abi.KVM_EXIT_MMIO)
    run.exit.mmio.phys_addr, run.exit.mmio.len, run.exit.mmio.is_write = 0xFEB00004, 2, 0
    ex = decode(vcpu, run)
    assert ex == MmioExit(0xFEB00004, 2, False, bytearray(2))
    ex.data[:] = b"\x34\x12"
    vcpu.complete_io(ex)
    back = abi.KvmRun.from_buffer_copy(vcpu.run_map[: ctypes.sizeof(abi.KvmRun)])
    assert bytes(back.exit.mmio.data[:2]) == b"\x34\x12"


def test_bad_mmio_length(vcpu):
    run = kvm_run(abi.KVM_EXIT_MMIO)
    run.exit.mmio.phys_addr, run.exit.mmio.len = 0xFEB00000, 9
    assert isinstance(decode(vcpu, run), InternalError)


def test_debug_and_interrupt_window(vcpu):
    assert isinstance(decode(vcpu, kvm_run(abi.KVM_EXIT_DEBUG)), DebugStop)
    assert decode(vcpu, kvm_run(abi.KVM_EXIT_IRQ_WINDOW_OPEN)) is None
    assert decode(vcpu, kvm_run(abi.KVM_EXIT_INTR)) is None
