"""scripts/kvm-unit-tests: the unittests.cfg reader, the verdicts and the command lines
(kvm-unit-tests' own x86/run is the model: pc-testdev, isa-debug-exit at 0xf4, -kernel)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
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
    # lib/report.c exits with 77 >> 1 when every test skipped; debug-exit makes it
    # (38 << 1) | 1 = 77 (QEMU 7.2 here: tsx-ctrl's "SUMMARY: 1 tests, 1 skipped" ends so)
    assert kut.verdict(77, b"SUMMARY: 1 tests, 1 skipped\n") == "SKIP"
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
    for column in ("emu", "kvm", "kvm-user"):
        cmd = kut.x86vm_command(t, tmp_path / "syscall.flat", column, 30)
        assert cmd[cmd.index("--cpu-vendor") + 1] == "AuthenticAMD"
    plain = kut.UnitTest(name="umip", file="umip.flat", qemu_params="-cpu qemu64,+umip")
    # on KVM QEMU gives a named model the host's vendor, as x86vm's KVM backend does
    assert "--cpu-vendor" not in kut.x86vm_command(plain, tmp_path / "umip.flat", "kvm", 30)


def test_emu_takes_the_vendor_of_the_rows_model_on_tcg():
    # QEMU_TCG_MODELS is checked against QEMU in test_kvm_unit_tests_cpu_models.py
    assert KUT.cpu_options("", "emu") == ["--cpu-vendor", "AuthenticAMD"]    # qemu64
    assert KUT.cpu_options("-cpu max -m 2048", "emu") == ["--cpu-vendor", "AuthenticAMD"]
    assert KUT.cpu_options("-cpu IvyBridge,phys-bits=36,host-phys-bits=off",
                           "emu") == ["--cpu-vendor", "GenuineIntel"]
    assert KUT.cpu_options("-cpu max,vendor=GenuineIntel", "emu") == ["--cpu-vendor",
                                                                     "GenuineIntel"]
    assert KUT.cpu_options("-cpu host,migratable=no", "emu") == []          # KVM's own
    assert KUT.cpu_options("-cpu max", "kvm") == []


def test_the_feature_hook(monkeypatch):
    assert KUT.cpu_model("-cpu max,+svm,-la57,phys-bits=36") == (
        "max", {"phys-bits": "36"}, {"svm"})
    assert KUT.cpu_model("-m 2g")[0] == "qemu64" and KUT.cpu_model("")[2] == {"svm"}
    monkeypatch.setitem(KUT.FEATURE_OPTIONS, "la57", ["--la57"])
    monkeypatch.setitem(KUT.FEATURE_OPTIONS, "-la57", ["--no-la57"])
    monkeypatch.setitem(KUT.FEATURE_OPTIONS, "svm", ["--svm"])
    assert KUT.cpu_options("-cpu max", "emu") == ["--cpu-vendor", "AuthenticAMD", "--la57",
                                                  "--svm"]
    assert KUT.cpu_options("-cpu max,-la57,-svm", "emu") == ["--cpu-vendor", "AuthenticAMD",
                                                             "--no-la57"]
    assert KUT.cpu_options("", "emu")[2:] == ["--no-la57", "--svm"]          # qemu64
    assert KUT.cpu_options("-cpu qemu64,+la57", "emu")[2] == "--la57"
    assert KUT.cpu_options("-cpu IvyBridge", "emu")[2:] == ["--no-la57"]
    assert KUT.cpu_options("-cpu max", "kvm") == []


KUT = load()


def _write(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_verdict_reads_the_last_summary_and_qemu_errors():
    out = b"SUMMARY: 3 tests, 1 unexpected failures\nSUMMARY: 51 tests, 3 unexpected failures\n"
    assert KUT.verdict(3, out) == "FAIL 3/51"
    assert KUT.verdict(1, out) == "PASS"
    assert KUT.verdict(None, b"") == "TIMEOUT"
    assert KUT.verdict(127, b"no summary") == "FAIL (127)"
    # QEMU's exit status 1 on a configuration error equals debug-exit(0)'s (0 << 1) | 1
    bad_cpu = b"qemu-system-x86_64: CPU model 'host' requires KVM or HVF\n"
    assert KUT.verdict(1, bad_cpu) == "QEMU error"
    warned = b"qemu-system-x86_64: warning: host doesn't support requested feature\ncpuid 28625\n"
    assert KUT.verdict(1, warned) == "PASS"


def test_merge_joins_columns_and_a_later_file_wins(tmp_path):
    qemu = _write(tmp_path / "q.json", [
        {"test": "setjmp", "results": {"qemu-tcg": "PASS"}, "seconds": {"qemu-tcg": 1.0}},
        {"test": "msr", "results": {"qemu-tcg": "FAIL (0)"}, "seconds": {"qemu-tcg": 2.0},
         "qemu_params": "-cpu max,vendor=GenuineIntel"}])
    emu = _write(tmp_path / "e.json", [
        {"test": "msr", "results": {"emu": "TIMEOUT"}, "seconds": {"emu": 60.0}},
        {"test": "sieve", "results": {"emu": "TIMEOUT"}, "seconds": {}}])
    rerun = _write(tmp_path / "r.json", [
        {"test": "msr", "results": {"emu": "PASS"}, "seconds": {"emu": 7.0}}])
    tests, columns = KUT.merge([qemu, emu, rerun])
    assert columns == ["qemu-tcg", "emu"]  # COLUMNS order, only those present
    assert [t.name for t in tests] == ["setjmp", "msr", "sieve"]
    msr = tests[1]
    assert msr.results == {"qemu-tcg": "FAIL (0)", "emu": "PASS"}
    assert msr.seconds == {"qemu-tcg": 2.0, "emu": 7.0}
    assert tests[2].seconds == {}  # the replaced verdict does not keep a stale time
    lines = KUT.table(tests, columns).splitlines()
    assert lines[0].split() == ["test", "qemu-tcg", "emu", "seconds", "notes"]
    assert lines[3].split()[:3] == ["msr", "FAIL", "(0)"]
    assert "vendor=GenuineIntel" in lines[3]


def test_merge_follows_the_cfg_order(tmp_path):
    cfg = tmp_path / "unittests.cfg"
    cfg.write_text("[b]\nfile = b.flat\n\n[a]\nfile = a.flat\nqemu_params = -cpu max\n")
    part = _write(tmp_path / "p.json", [
        {"test": "a", "results": {"emu": "PASS"}, "seconds": {"emu": 1.0}},
        {"test": "b", "results": {"kvm": "SKIP"}, "seconds": {"kvm": 1.0}}])
    tests, columns = KUT.merge([part], KUT.parse_cfg(cfg))
    assert [t.name for t in tests] == ["b", "a"]
    assert columns == ["emu", "kvm"]
    assert tests[1].qemu_params == "-cpu max"


def test_main_merge_prints_the_table(tmp_path, capsys):
    part = _write(tmp_path / "p.json", [
        {"test": "setjmp", "results": {"qemu-kvm": "PASS", "kvm": "PASS"},
         "seconds": {"qemu-kvm": 6.0, "kvm": 1.0}}])
    assert KUT.main(["--merge", str(part)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["test", "qemu-kvm", "kvm"]
    assert out[2].split() == ["setjmp", "PASS", "PASS", "6", "1"]


# Per-subtest comparison. The fixtures are real serial logs of session 5's runs
# (scripts/kvm-unit-tests --logs, kvm-unit-tests 1da1819e, QEMU 7.2.22), unedited.
LOGS = Path(__file__).resolve().parent / "data" / "kvm-unit-tests"


def _log(name: str) -> list[tuple[str, str]]:
    return KUT.report_lines((LOGS / name).read_bytes())


def test_report_lines_agree_with_the_guests_own_summary():
    # lib/report.c counts every report line into "SUMMARY: n tests[, m skipped]"
    for name, tests, skipped in (("la57.emu.log", 54, 5), ("xsave.qemu-tcg.log", 386, 0),
                                 ("xsave.emu.log", 299, 0)):
        lines = _log(name)
        assert len(lines) == tests, name
        assert sum(s == "SKIP" for s, _ in lines) == skipped, name
    tcg = _log("emulator.qemu-tcg.log")   # ends at an unhandled exception: no SUMMARY
    assert tcg[0] == ("SKIP", "Skipping tests that require forced emulation, "
                              "use kvm.force_emulation_prefix=1 to enable")
    assert ("FAIL", "mov null, %ss (with ss.rpl != cpl)") in tcg
    assert [t for s, t in tcg if s == "PASS"].count("adc(0)") == 2
    # the register dump after the exception is not a report line
    assert not any(t.startswith("RAX=") or s not in ("PASS", "FAIL", "SKIP") for s, t in tcg)


def test_missing_passes_by_text_on_the_emulator_logs():
    # TCG (qemu64: AuthenticAMD) passes AMD's form; emu ran as GenuineIntel then
    # — the same subtest in the other vendor's text: passed, and listed as such
    missing, masked, same = KUT.passes_missing(_log("emulator.qemu-tcg.log"),
                                               _log("emulator.emu.log"))
    assert missing == [] and masked == []
    assert same == [("no fep: #DB occurred after MOV SS", "no fep: #DB suppressed after MOV SS")]
    back, _, _ = KUT.passes_missing(_log("emulator.emu.log"), _log("emulator.qemu-tcg.log"))
    assert "no fep: #DB suppressed after MOV SS" in back     # the mapping is QEMU's text -> ours
    # without a pass in the other text it stays missing
    tcg = _log("emulator.qemu-tcg.log")
    emu = [(s, t) for s, t in _log("emulator.emu.log") if "suppressed after MOV SS" not in t]
    assert KUT.passes_missing(tcg, emu)[0] == ["no fep: #DB occurred after MOV SS"]


def test_emulator_runs_emu_as_intel_for_its_far_jump():
    assert KUT.cpu_options("", "emu", "emulator") == ["--cpu-vendor", "GenuineIntel"]
    assert KUT.cpu_options("", "emu", "eventinj") == ["--cpu-vendor", "AuthenticAMD"]
    assert KUT.cpu_options("", "kvm", "emulator") == []


def test_a_row_asking_for_svm_hands_its_features_to_emu():
    row = "-cpu max,+svm,-rdtscp,-xsave,-invpcid,-skinit"
    assert KUT.cpu_options(row, "emu")[2:] == ["--cpu-features",
                                               "+svm,-rdtscp,-xsave,-invpcid,-skinit"]
    assert "--cpu-features" not in KUT.cpu_options(row, "kvm")
    assert "--cpu-features" not in KUT.cpu_options("-cpu qemu64,-pcid,+invpcid", "emu")


def test_a_repeated_name_must_pass_as_often():
    ref = [("PASS", "adc(0)"), ("PASS", "or"), ("PASS", "adc(0)"), ("FAIL", "x"),
           ("SKIP", "y")]
    assert KUT.passes_missing(ref, ref) == ([], [], [])
    once = [("PASS", "adc(0)"), ("FAIL", "adc(0)"), ("PASS", "or"), ("PASS", "x")]
    assert KUT.passes_missing(ref, once) == (["adc(0) [#2]"], [], [])
    assert KUT.passes_missing(ref, [])[0] == ["adc(0) [#1]", "or", "adc(0) [#2]"]


def test_numbers_in_a_name_only_hint_a_match():
    # xsave prints an uninitialised value in its XGETBV names: 4 of TCG's passes read the
    # same as emu's with the numbers masked; they stay missing, reported as such
    missing, masked, _ = KUT.passes_missing(_log("xsave.qemu-tcg.log"), _log("xsave.emu.log"))
    assert len(masked) == 4 and all(m in missing for m, _ in masked)
    assert masked[0][0].startswith("XGETBV(0x") and masked[0][1].startswith("XGETBV(0x")
    assert masked[0][0] != masked[0][1]
    # la57 under TCG's max (5-level paging) passes subtests 4-level paging cannot
    missing, _, _ = KUT.passes_missing(_log("la57.qemu-tcg.log"), _log("la57.emu.log"))
    assert len(missing) == 11
    assert "Write to GDTR_BASE with value ffaaaaaaaaaaaaaa did succeed as expected" in missing


def _row(name, results, reports):
    return KUT.UnitTest(name=name, file=f"{name}.flat", results=results,
                        reports={c: _log(f) for c, f in reports.items()})


def test_subtest_report_lists_rows_and_a_verdict_per_column():
    tests = [
        _row("emulator", {"qemu-tcg": "FAIL (127)", "emu": "FAIL (127)"},
             {"qemu-tcg": "emulator.qemu-tcg.log", "emu": "emulator.emu.log"}),
        _row("la57", {"qemu-tcg": "FAIL (0)", "emu": "PASS"},
             {"qemu-tcg": "la57.qemu-tcg.log", "emu": "la57.emu.log"}),
        _row("xsave", {"qemu-tcg": "PASS", "emu": "PASS"},
             {"qemu-tcg": "xsave.qemu-tcg.log", "emu": "xsave.emu.log"}),
        # QEMU's own error: no report lines, an empty set; emu's contains it
        KUT.UnitTest(name="ept", file="ept.flat", results={"qemu-tcg": "QEMU error",
                                                           "emu": "SKIP"},
                     reports={"qemu-tcg": [], "emu": [("SKIP", "no vmx")]}),
        # no reference lines recorded (an older --json): not compared
        KUT.UnitTest(name="old", file="old.flat", results={"qemu-tcg": "FAIL (0)",
                                                           "emu": "PASS"}),
    ]
    comparisons = KUT.compare(tests, ["qemu-tcg", "emu"])
    assert [c.test for c in comparisons] == ["emulator", "la57", "xsave", "ept"]
    text = KUT.subtest_report(comparisons, shown=3).splitlines()
    assert not any(line.startswith("emulator emu") for line in text)   # nothing missing
    assert ("    emulator emu: 'no fep: #DB occurred after MOV SS' = "
            "'no fep: #DB suppressed after MOV SS'") in text
    assert "    ... 8 more (--all-subtests)" in text   # la57's 11, 3 shown
    assert text[-2] == ("verdict emu vs qemu-tcg, rows where QEMU does not fully PASS: x86vm "
                        "passes a superset in 2 of 3; not in la57 (11)")
    assert text[-1].startswith("verdict emu vs qemu-tcg, rows where QEMU PASSes: x86vm passes "
                               "a superset in 0 of 1; not in xsave (")


def test_json_carries_the_report_lines_and_merge_joins_them(tmp_path):
    run = KUT.UnitTest(name="emulator", file="emulator.flat",
                       results={"qemu-tcg": "FAIL (127)"},
                       reports={"qemu-tcg": _log("emulator.qemu-tcg.log")})
    first = tmp_path / "tcg.json"
    first.write_text(KUT.to_json([run]))
    emu = _write(tmp_path / "emu.json", [
        {"test": "emulator", "results": {"emu": "TIMEOUT"}, "seconds": {},
         "reports": {"emu": [["PASS", "or"]]}}])
    rerun = _write(tmp_path / "rerun.json", [
        {"test": "emulator", "results": {"emu": "FAIL (127)"}, "seconds": {}}])
    tests, columns = KUT.merge([first, emu])
    assert tests[0].reports["qemu-tcg"] == _log("emulator.qemu-tcg.log")
    assert tests[0].reports["emu"] == [("PASS", "or")]
    tests, _ = KUT.merge([first, emu, rerun])   # a verdict without lines drops stale ones
    assert "emu" not in tests[0].reports
    assert KUT.compare(tests, columns) == []


def test_a_qemu_kvm_internal_error_ends_the_run_early(tmp_path):
    # QEMU on KVM prints the error, the registers and the code bytes, then pauses for good
    log = LOGS / "emulator.qemu-kvm.log"
    assert KUT.QEMU_KVM_ERROR.search(log.read_bytes())
    cmd = ["sh", "-c", f"cat {log}; sleep 30"]
    run = KUT.run_command(cmd, 20, KUT.QEMU_KVM_ERROR)
    assert (run.status, run.stopped) == (None, True) and run.seconds < 10
    assert run.output == log.read_bytes()
    run = KUT.run_command(["sh", "-c", "echo PASS: x; exit 3"], 20, KUT.QEMU_KVM_ERROR)
    assert (run.status, run.output, run.stopped) == (3, b"PASS: x\n", False)


def test_a_timeout_tells_quiet_from_slow():
    quiet = KUT.run_command(["sh", "-c", "echo started; sleep 30"], 3)
    assert quiet.status is None and quiet.output == b"started\n"
    assert quiet.quiet_from < 1 and 3 <= quiet.seconds < 8
    busy = KUT.run_command(["sh", "-c", "while :; do echo x; sleep 0.2; done"], 2)
    assert busy.status is None and busy.quiet_from > 1.5
    # x86vm's own timeout message is not the guest's output
    x86vm = KUT.run_command(["sh", "-c", "echo started; sleep 2; echo 'x86vm: guest stopped: "
                             "timeout after 2 s'; exit 124"], 10)
    assert x86vm.status == 124 and x86vm.quiet_from < 1 and x86vm.seconds >= 2


def test_run_test_records_verdicts_and_report_lines(tmp_path, monkeypatch):
    # a stand-in QEMU: on KVM it prints a real KVM-internal-error log and then waits, as QEMU
    # does with the guest paused; on TCG the emulator log and debug-exit's status 255
    (tmp_path / "x86").mkdir()
    (tmp_path / "x86" / "emulator.flat").write_bytes(b"")
    fake = tmp_path / "qemu"
    fake.write_text("#!/bin/sh\ncase \"$*\" in\n"
                    f"*accel=kvm*) cat {LOGS / 'emulator.qemu-kvm.log'}; exec sleep 60;;\n"
                    f"*) cat {LOGS / 'emulator.qemu-tcg.log'}; exit 255;;\nesac\n")
    fake.chmod(0o755)
    monkeypatch.setattr(KUT, "QEMU", str(fake))
    test = KUT.UnitTest(name="emulator", file="emulator.flat")
    KUT.run_test(test, tmp_path, ["qemu-tcg", "qemu-kvm"], 30, 30, tmp_path)
    assert test.results == {"qemu-tcg": "FAIL (255)", "qemu-kvm": "FAIL (KVM error)"}
    assert test.seconds["qemu-kvm"] < 15
    assert test.reports["qemu-tcg"] == _log("emulator.qemu-tcg.log")
    assert test.reports["qemu-kvm"] == _log("emulator.qemu-kvm.log")
    assert (tmp_path / "emulator.qemu-kvm.log").read_bytes() == (
        LOGS / "emulator.qemu-kvm.log").read_bytes()
