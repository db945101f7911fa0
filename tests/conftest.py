"""Oracle gates for the whole suite (tests/support/oracles.py).

``@pytest.mark.oracle("qemu", ...)`` on a test (or ``pytestmark``) checks those oracles before
it runs, and the ``kvm`` mark checks /dev/kvm with the raw probe: a missing oracle skips the
test, or fails it when ``X86VM_REQUIRE`` names it (``X86VM_REQUIRE=all``: every oracle).
"""

from __future__ import annotations

import pytest

from support import oracles


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "oracle(*names): needs these external oracles (tests/support/oracles.py); "
        "skips without them, fails when X86VM_REQUIRE names them")
    oracles.required()          # an unknown name in X86VM_REQUIRE is a usage error, early


def pytest_runtest_setup(item: pytest.Item) -> None:
    names = [name for mark in item.iter_markers("oracle") for name in mark.args]
    if item.get_closest_marker("kvm") is not None:
        names.append("kvm")
    oracles.require(*dict.fromkeys(names))


def pytest_report_header(config: pytest.Config) -> str:
    wanted = sorted(oracles.required())
    shown = ", ".join(wanted) if wanted else "(none: a missing oracle skips)"
    return f"{oracles.REQUIRE_ENV}: {shown}"
