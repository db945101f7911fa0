"""scripts/kvm-unit-tests: the verdict of a run and ``--merge`` of per-piece ``--json`` files
into one table (the whole table is run in pieces under the heavy runner)."""

from __future__ import annotations

import importlib.util
import json
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_path = str(ROOT / "scripts" / "kvm-unit-tests")
_loader = SourceFileLoader("kut_script", _path)
kut = importlib.util.module_from_spec(
    importlib.util.spec_from_file_location("kut_script", _path, loader=_loader))
sys.modules["kut_script"] = kut  # its dataclasses look their module up there
_loader.exec_module(kut)


def _write(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_verdict_reads_the_last_summary_and_the_exit_status():
    out = b"SUMMARY: 3 tests, 1 unexpected failures\nSUMMARY: 51 tests, 3 unexpected failures\n"
    assert kut.verdict(3, out) == "FAIL 3/51"
    assert kut.verdict(1, out) == "PASS"
    assert kut.verdict(None, b"") == "TIMEOUT"
    assert kut.verdict(((77 >> 1) << 1) | 1, b"SUMMARY: 1 tests, 1 skipped") == "SKIP"
    assert kut.verdict(127, b"no summary") == "FAIL (127)"
    # QEMU's exit status 1 on a configuration error equals debug-exit(0)'s (0 << 1) | 1
    bad_cpu = b"qemu-system-x86_64: CPU model 'host' requires KVM or HVF\n"
    assert kut.verdict(1, bad_cpu) == "QEMU error"
    warned = b"qemu-system-x86_64: warning: host doesn't support requested feature\ncpuid 28625\n"
    assert kut.verdict(1, warned) == "PASS"


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
    tests, columns = kut.merge([qemu, emu, rerun])
    assert columns == ["qemu-tcg", "emu"]  # COLUMNS order, only those present
    assert [t.name for t in tests] == ["setjmp", "msr", "sieve"]
    msr = tests[1]
    assert msr.results == {"qemu-tcg": "FAIL (0)", "emu": "PASS"}
    assert msr.seconds == {"qemu-tcg": 2.0, "emu": 7.0}
    assert tests[2].seconds == {}  # the replaced verdict does not keep a stale time
    lines = kut.table(tests, columns).splitlines()
    assert lines[0].split() == ["test", "qemu-tcg", "emu", "seconds", "notes"]
    assert lines[3].split()[:3] == ["msr", "FAIL", "(0)"]
    assert "vendor=GenuineIntel" in lines[3]


def test_merge_follows_the_cfg_order(tmp_path):
    cfg = tmp_path / "unittests.cfg"
    cfg.write_text("[b]\nfile = b.flat\n\n[a]\nfile = a.flat\nqemu_params = -cpu max\n")
    part = _write(tmp_path / "p.json", [
        {"test": "a", "results": {"emu": "PASS"}, "seconds": {"emu": 1.0}},
        {"test": "b", "results": {"kvm": "SKIP"}, "seconds": {"kvm": 1.0}}])
    tests, columns = kut.merge([part], kut.parse_cfg(cfg))
    assert [t.name for t in tests] == ["b", "a"]
    assert columns == ["emu", "kvm"]
    assert tests[1].qemu_params == "-cpu max"


def test_main_merge_prints_the_table(tmp_path, capsys):
    part = _write(tmp_path / "p.json", [
        {"test": "setjmp", "results": {"qemu-kvm": "PASS", "kvm": "PASS"},
         "seconds": {"qemu-kvm": 6.0, "kvm": 1.0}}])
    assert kut.main(["--merge", str(part)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["test", "qemu-kvm", "kvm"]
    assert out[2].split() == ["setjmp", "PASS", "PASS", "6", "1"]
