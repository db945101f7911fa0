"""bench/exits.py keeps working (a tiny run; the real numbers come from running it by hand)."""

import re
import subprocess
import sys
from pathlib import Path

from test_kvm_support import requires_kvm

pytestmark = requires_kvm()

BENCH = Path(__file__).resolve().parents[1] / "bench" / "exits.py"


def test_exits_bench_prints_both_loops_and_the_ratio():
    done = subprocess.run([sys.executable, str(BENCH), "--exits", "300", "--rounds", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\s+(wall|cpu)\s+bare KVM_RUN loop\s+(\d+) exits/s .* full run loop\s+"
                      r"(\d+) exits/s .* ratio (\d+\.\d+)$", done.stdout, re.MULTILINE)
    assert [r[0] for r in rows] == ["wall", "cpu"]
    for _, bare, full, ratio in rows:
        assert int(bare) > 0 and int(full) > 0
        assert abs(float(ratio) - int(full) / int(bare)) < 0.01
