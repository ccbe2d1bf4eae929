"""Delve's own map view as the oracle: after every delete, the keys dlvsnap decoded from raw
memory equal the keys Delve's map iterator loads for the same variable at the same stop."""

from __future__ import annotations

import pytest

from dlvsnap.delve.types import LoadConfig
from dlvsnap.model import DeleteEvent
from dlvsnap.session import Session
from dlvsnap.watch import MapWatch, WatchOptions
from tests.support import build_fixture

pytestmark = pytest.mark.live


@pytest.mark.parametrize("mode", ["watchpoint", "breakpoints"])
@pytest.mark.parametrize(
    ("fixture", "expr", "n"), [("deletes", "m", 6), ("large", "main.table", 53)]
)
def test_live_keys_equal_delves_own_view(
    dlv: str, fixture: str, expr: str, n: int, mode: str
) -> None:
    checked: list[int] = []
    with Session.launch(dlv, build_fixture(fixture), [], sink=None) as s:

        def on_event(ev: DeleteEvent) -> None:
            # Stopped right after the delete's last write: in the caller (breakpoint mode,
            # after the call returned) or inside the runtime (watchpoint mode, at the trap
            # that clears the map's writing flag): EXPR is evaluated in the caller's frame.
            frames = s.client.stacktrace(ev.goroutine, 20)
            at = next(i for i, f in enumerate(frames) if f.function == ev.location.function)
            assert (at == 0) == (mode == "breakpoints" or ev.seq == 1), frames[0]
            v = s.client.eval(expr, ev.goroutine, at, cfg=LoadConfig(max_array_values=100_000))
            assert v.len == ev.after.count
            delve_keys = sorted(int(k.value) for k in v.children[0::2])
            assert len(delve_keys) == v.len  # Delve loaded every entry
            assert sorted(k for k in ev.after.live_keys() if isinstance(k, int)) == delve_keys
            checked.append(ev.seq)

        # live_keys: the "after" snapshot holds the whole map (else only what a delete touches)
        opts = WatchOptions(expr=expr, live_keys=True, mode=mode)
        summary = MapWatch(s, opts, on_event).run()
    assert checked == list(range(1, n + 1))
    assert summary.deletes == n
    assert summary.mode == mode
