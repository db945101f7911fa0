"""KVM ``get_state``/``set_state`` and ``set_debug`` on running guests.

The expected register values are the ones the guest's own instructions put there (SDM Vol. 2:
MOV to CR/DR, WRMSR); KVM reads them back. A snapshot taken at an exit, loaded again and read
again must be the same (segments' hidden parts, CRs, EFER, MSRs, DRs, events), and a guest
resumed after ``set_state`` must see the values loaded.
"""

from dataclasses import replace

import pytest

from test_kvm_support import ExitDevice, Recorder, assemble, enter_long_mode, requires_kvm
from x86vm.cpu import state as cs
from x86vm.machine.backend import DebugControl
from x86vm.machine.exits import DebugStop, IoExit
from x86vm.machine.vm import Machine

pytestmark = requires_kvm()

CODE = 0x10000
CHECKPOINT_PORT, REPORT_PORT, EXIT_PORT = 0x80, 0x84, 0xF4


class Checkpoint:
    """A write stops the run: the guest is paused at an exit, mid-run."""

    def __init__(self, machine):
        self.machine = machine

    def read(self, offset, size):
        return 0

    def write(self, offset, size, value):
        self.machine.request_stop(0, "checkpoint")


GUEST = """
    mov $0x80000, %rsp
    mov $0x174, %ecx            # IA32_SYSENTER_CS
    mov $0x10, %eax
    xor %edx, %edx
    wrmsr
    mov $0xc0000082, %ecx       # LSTAR
    mov $0x81000000, %eax
    mov $0xffffffff, %edx
    wrmsr
    mov $0xc0000084, %ecx       # SFMASK
    mov $0x47700, %eax
    xor %edx, %edx
    wrmsr
    mov $0xc0000102, %ecx       # KERNEL_GS_BASE
    mov $0x9000, %eax
    mov $0x1234, %edx
    wrmsr
    mov $0xc0000100, %ecx       # FS_BASE: the hidden base of fs
    mov $0x70001000, %eax
    xor %edx, %edx
    wrmsr
    mov $0xc0000080, %ecx       # EFER.SCE
    rdmsr
    or $1, %eax
    wrmsr
    mov $0x1111, %rax
    mov %rax, %dr0
    mov $0x2222, %rax
    mov %rax, %dr1
    mov $0x3333, %rax
    mov %rax, %dr2
    mov $0x4444, %rax
    mov %rax, %dr3
    mov $0xd0401, %rax          # DR7: L0, a 4-byte write watch on DR0
    mov %rax, %dr7
    mov $0xdead000, %rax
    mov %rax, %cr2
    mov $5, %rax
    mov %rax, %cr8
    mov %cr4, %rax
    or $0x200, %rax             # CR4.OSFXSR
    mov %rax, %cr4
    mov $0x18, %ax
    mov %ax, %es
    mov $0x0123456789abcdef, %rbx
    mov $0x5555, %r12
    std
    out %al, $0x80              # checkpoint: the run stops here
    mov %rbx, %rax
    outl %eax, $0x84
    mov %dr1, %rax
    outl %eax, $0x84
    mov %cr8, %rax
    outl %eax, $0x84
    pushfq
    pop %rax
    outl %eax, $0x84
    mov $0, %al
    out %al, $0xf4
"""


@pytest.fixture
def machine():
    m = Machine(memory_size=2 << 20)
    m.pio.register(CHECKPOINT_PORT, 1, Checkpoint(m), "checkpoint")
    m.pio.register(EXIT_PORT, 1, ExitDevice(m), "debug-exit")
    yield m
    m.close()


def paused_guest(m):
    """Run GUEST to its checkpoint; return the report device and the entry state."""
    report = Recorder()
    m.pio.register(REPORT_PORT, 4, report, "report")
    m.memory.write(CODE, assemble(GUEST, CODE, 64))
    entry = enter_long_mode(m.memory, CODE)
    result = m.run(entry, timeout=5)
    assert result.reason == "checkpoint"
    return report, entry


def without_tsc(state):
    return replace(state, msrs={k: v for k, v in state.msrs.items() if k != cs.MSR_IA32_TSC})


def test_a_paused_guest_reads_back_what_its_instructions_set(machine):
    paused_guest(machine)
    s = machine.get_state()
    assert s.gpr("rbx") == 0x0123456789ABCDEF and s.gpr("r12") == 0x5555
    assert s.rflags & cs.RFLAGS_DF and s.rflags & cs.RFLAGS_FIXED
    assert s.dr[:4] == (0x1111, 0x2222, 0x3333, 0x4444) and s.dr[5] & 0xFFFFF == 0xD0401
    assert (s.cr2, s.cr8) == (0xDEAD000, 5)
    assert s.cr4 & cs.CR4_OSFXSR and s.cr4 & cs.CR4_PAE
    assert s.efer & (cs.EFER_SCE | cs.EFER_LME | cs.EFER_LMA) == (
        cs.EFER_SCE | cs.EFER_LME | cs.EFER_LMA)
    assert s.msrs[cs.MSR_IA32_SYSENTER_CS] == 0x10
    assert s.msrs[cs.MSR_LSTAR] == 0xFFFFFFFF81000000
    assert s.msrs[cs.MSR_SFMASK] == 0x47700
    assert s.msrs[cs.MSR_KERNEL_GS_BASE] == 0x123400009000
    assert s.fs.base == 0x70001000
    assert s.es.selector == 0x18 and s.es.limit == 0xFFFFFFFF and s.es.g == 1
    assert s.cs.l == 1 and s.cs.selector == 0x10 and s.mode == "long64"
    assert s.pending is None


def test_get_set_get_round_trips_on_a_paused_guest(machine):
    paused_guest(machine)
    first = machine.get_state()
    machine.set_state(first)
    second = machine.get_state()
    assert without_tsc(second) == without_tsc(first)
    # the TSC was written back and kept counting from there
    assert 0 <= second.msrs[cs.MSR_IA32_TSC] - first.msrs[cs.MSR_IA32_TSC] < 10**10


def test_a_resumed_guest_sees_the_state_that_was_set(machine):
    report, _ = paused_guest(machine)
    s = machine.get_state()
    machine.set_state(replace(s, gprs={**s.gprs, "rbx": 0xCAFEF00D}, cr8=9,
                              dr=(s.dr[0], 0x7777, *s.dr[2:]),
                              rflags=s.rflags & ~cs.RFLAGS_DF))
    result = machine.run(timeout=5)  # no entry: go on where the vCPU is
    assert result.status == 1, result.reason
    rbx, dr1, cr8, rflags = (v for *_, v in report.log)
    assert (rbx, dr1, cr8) == (0xCAFEF00D, 0x7777, 9)
    assert not rflags & cs.RFLAGS_DF


def test_set_state_refuses_unknown_register_names_before_changing_anything(machine):
    before = machine.get_state()
    with pytest.raises(ValueError, match="xmm0"):
        machine.set_state(replace(before, gprs={"xmm0": 1}))
    assert machine.get_state().rip == before.rip


DEBUG_GUEST = """
    nop
    mov $5, %eax
    mov $1, %al
    out %al, $0xf4
"""


def debug_stops(m, control, limit=8):
    """Exits of the debug guest under ``control``, up to the debug-exit write."""
    m.memory.write(CODE, assemble(DEBUG_GUEST, CODE, 64))
    m.set_state(enter_long_mode(m.memory, CODE))
    m.set_debug(control)
    seen = []
    with m.backend.running():
        for _ in range(limit):
            ex = m.backend.run()
            seen.append(ex)
            if isinstance(ex, IoExit):
                break
    return seen


def test_single_step_stops_after_each_instruction(machine):
    seen = debug_stops(machine, DebugControl(single_step=True))
    # nop (1 byte), mov $5,%eax (5), mov $1,%al (2), then the out exits
    assert [(e.pc, e.dr6 & 0x4000) for e in seen[:3]] == [
        (CODE + 1, 0x4000), (CODE + 6, 0x4000), (CODE + 8, 0x4000)]
    assert isinstance(seen[3], IoExit)


def test_a_debug_register_breakpoint_stops_before_the_instruction(machine):
    seen = debug_stops(machine, DebugControl(breakpoints=(CODE + 6,)), limit=1)
    assert isinstance(seen[0], DebugStop)
    assert seen[0].pc == CODE + 6 and seen[0].dr6 & 0xF == 1  # DR6.B0: slot 0


def test_software_breakpoints_stop_at_the_int3(machine):
    machine.memory.write(CODE, assemble("nop\nint3\nhlt", CODE, 64))
    machine.set_state(enter_long_mode(machine.memory, CODE))
    machine.set_debug(DebugControl(software_breakpoints=True))
    with machine.backend.running():
        ex = machine.backend.run()
    assert isinstance(ex, DebugStop) and ex.pc == CODE + 1


def test_debug_control_is_checked():
    from x86vm.machine.kvm.state import guest_debug

    with pytest.raises(ValueError, match="hold 4"):
        guest_debug(DebugControl(breakpoints=(1, 2, 3, 4, 5)))
    with pytest.raises(ValueError, match="aligned"):
        guest_debug(DebugControl(watchpoints=((0x1002, 4, "w"),)))
    with pytest.raises(ValueError, match="kind"):
        guest_debug(DebugControl(watchpoints=((0x1000, 4, "r"),)))
    assert guest_debug(DebugControl()) == (0, (0,) * 8)


@pytest.mark.parametrize("event", [
    cs.PendingEvent(13, "exception", error_code=0x18),
    cs.PendingEvent(6, "exception"),
    cs.PendingEvent(0x30, "interrupt"),
])
def test_a_pending_event_round_trips_through_kvm(machine, event):
    paused_guest(machine)
    machine.set_state(replace(machine.get_state(), pending=event))
    assert machine.get_state().pending == event
    machine.set_state(replace(machine.get_state(), pending=None))
    assert machine.get_state().pending is None


def test_machine_hands_debug_stops_to_its_handler_and_resumes(machine):
    """A gdb-like handler: it reads registers at each step, then turns stepping off."""
    machine.memory.write(CODE, assemble(DEBUG_GUEST, CODE, 64))
    steps = []

    def handler(stop):
        steps.append((stop.pc, machine.get_state().gpr("rax") & 0xFF))
        if len(steps) == 2:
            machine.set_debug(DebugControl())
        return "continue"

    machine.on_debug_stop = handler
    machine.set_debug(DebugControl(single_step=True))
    result = machine.run(enter_long_mode(machine.memory, CODE), timeout=5)
    assert result.status == 3, result.reason  # the guest's debug-exit write of 1
    assert steps == [(CODE + 1, 0), (CODE + 6, 5)]  # after nop; after mov $5,%eax



def test_timers_fire_on_the_vcpu_thread_while_the_guest_spins(machine):
    """KVM's guest time is the host clock: a deadline kicks the vCPU out of KVM_RUN, the
    callback runs on the thread running the vCPU, a cancelled timer never runs."""
    import threading

    from x86vm.machine.boot.state import real_mode

    machine.memory.write(0x7C00, assemble("1: jmp 1b", 0x7C00))
    fired = []
    start = machine.clock_ns()

    def first():
        fired.append(("first", threading.get_ident(), machine.clock_ns() - start))
        machine.at(machine.clock_ns() + 20_000_000, second)

    def second():
        fired.append(("second", threading.get_ident(), machine.clock_ns() - start))
        machine.request_stop(5, "timer")

    machine.at(start + 50_000_000, first)
    machine.at(start + 60_000_000, lambda: fired.append(("cancelled",))).cancel()
    result = machine.run(real_mode(0, 0x7C00), timeout=5)
    assert (result.status, result.reason) == (5, "timer")
    assert [f[0] for f in fired] == ["first", "second"]
    assert {f[1] for f in fired} == {threading.get_ident()}
    assert 50_000_000 <= fired[0][2] < 1_000_000_000
    assert fired[1][2] >= fired[0][2] + 20_000_000


def test_a_timer_fires_while_the_guest_exits_all_the_time(machine):
    from x86vm.machine.boot.state import real_mode

    machine.pio.register(0x90, 1, Recorder(), "sink")
    machine.memory.write(0x7C00, assemble("1: out %al, $0x90\njmp 1b", 0x7C00))
    machine.at(machine.clock_ns() + 30_000_000, lambda: machine.request_stop(7, "timer"))
    result = machine.run(real_mode(0, 0x7C00), timeout=5)
    assert (result.status, result.reason) == (7, "timer") and result.exits > 10
    # every exit was one port write, dispatched and counted by the bus
    assert machine.exit_stats()["pio"] == {"reads": 0, "writes": result.exits, "unclaimed": 0}
