from __future__ import annotations

import pytest

from tests.support import dlv_binary


@pytest.fixture(scope="session")
def dlv() -> str:
    return dlv_binary()
