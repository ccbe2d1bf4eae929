"""Tells tests/support.py which markers the running test carries: its helpers that find
dlv, Go or chromium refuse a test without the marker that keeps it out of `make check`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import support


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/live drives dlv or Go: a module there without the marker
    (tests/live/test_large.py was one) would run in `make check` and without the gate."""
    live_dir = Path(__file__).parent / "live"
    unmarked = [
        i.nodeid for i in items if live_dir in i.path.parents and not i.get_closest_marker("live")
    ]
    if unmarked:
        raise pytest.UsageError(f"tests under tests/live without the live marker: {unmarked}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    # before the test's fixtures are set up: a session fixture may look for dlv
    support.current_markers = frozenset(m.name for m in item.iter_markers())
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        support.current_markers = None
