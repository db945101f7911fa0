"""The recorded QEMU results (guests/expected_qemu.json) — the fallback oracle of the
end-to-end tests where QEMU is missing — still match what QEMU does with the current guest
sources. If a guest changes, rerun ``python3 tests/guests/oracle.py record``."""

from __future__ import annotations

import pytest

from guests.fixtures import guest_dir  # noqa: F401  (fixture)
from guests.oracle import SCENARIOS, recorded, run_qemu


@pytest.mark.oracle("qemu")
@pytest.mark.parametrize("name", [n for n, sc in SCENARIOS.items() if not sc.oracle])
def test_recorded_qemu_results_are_current(guest_dir, name):  # noqa: F811
    assert run_qemu(name, guest_dir) == recorded(name), \
        "stale guests/expected_qemu.json: run python3 tests/guests/oracle.py record"
