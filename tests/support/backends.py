"""The backends a test runs a guest on: KVM under the ``kvm`` mark (tests/conftest.py probes
/dev/kvm before the test and skips, or fails under ``X86VM_REQUIRE``), and the emulator,
which is always there. Creating a VM on a backend that passed its gate is never skipped."""

from __future__ import annotations

from collections.abc import Callable

import pytest

BACKENDS = (pytest.param("kvm", marks=pytest.mark.kvm), "emu")
"""For ``@pytest.mark.parametrize("backend", BACKENDS)``."""

PLATFORMS = (
    pytest.param(("emu", {}), id="emu"),
    pytest.param(("kvm", {}), id="kvm-kernel-irqchip", marks=pytest.mark.kvm),
    pytest.param(("kvm", {"irqchip": False}), id="kvm-user-irqchip", marks=pytest.mark.kvm),
)
"""(backend, Machine options) for a guest that needs interrupt controllers: emu with the
Python chipset, KVM with its in-kernel irqchip, KVM with the Python chipset (--irqchip user)."""


def backend_fixture() -> Callable[..., str]:
    """A module-scoped ``backend`` fixture over :data:`BACKENDS`, so a module's tests run per
    backend in two groups: ``backend = backend_fixture()`` at module level."""

    @pytest.fixture(scope="module", params=BACKENDS, name="backend")
    def backend(request: pytest.FixtureRequest) -> str:
        return request.param

    return backend
