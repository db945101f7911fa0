"""pytest fixtures shared by the boot tests: the guests built once per test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from guests.build import build_all, missing_tools
from support.oracles import require


@pytest.fixture(scope="module")
def guest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding every guest of RECIPES, built from source with gcc/as/ld."""
    require("gcc", "binutils")
    assert not missing_tools()
    out = tmp_path_factory.mktemp("guests")
    build_all(out)
    return out
