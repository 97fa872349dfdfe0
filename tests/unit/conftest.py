"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from operators.quality import SUITES_DIR, _gx_init


@pytest.fixture(scope="session")
def gx_ready() -> None:
    """GX imported and the suites loaded in this process (``gx_validate`` runs here, no side process)."""
    _gx_init(str(SUITES_DIR))
