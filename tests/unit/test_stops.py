"""The stop source's logic at the end of a watched call, on scripted Delve stops (a fake
client that answers ``continue`` with the next state): which stop ends the call, which are
passed, which end the watch. The JSON is the shape Delve's API v2 gives (the live tests
drive the real thing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from dlvsnap.delve.types import Breakpoint, DebuggerState
from dlvsnap.errors import TargetError
from dlvsnap.model import Location
from dlvsnap.watch.hits import Hit, KeyArg, UsersStop
from dlvsnap.watch.stops import StopSource, _Return
from dlvsnap.watch.watched import WatchedMap

OURS = "dlvsnap1x1n"


def bp(bp_id: int, name: str = "") -> dict[str, Any]:
    return {"id": bp_id, "name": name}


def state(
    *threads: tuple[int, dict[str, Any] | None], next_in_progress: bool = False
) -> DebuggerState:
    """A stop: (goroutine, breakpoint) per thread."""
    return DebuggerState.from_json(
        {
            "Threads": [
                {"id": i + 1, "goroutineID": g, "breakPoint": b, "function": {"name": "main.f"}}
                for i, (g, b) in enumerate(threads)
            ],
            "NextInProgress": next_in_progress,
        }
    )


@dataclass
class FakeClient:
    script: list[DebuggerState]
    log: list[str] = field(default_factory=list)

    def command(self, name: str, timeout: float | None = None, **extra: Any) -> DebuggerState:
        self.log.append(name)
        return self.script.pop(0)

    def clear_breakpoint(self, bp_id: int) -> None:
        self.log.append(f"clear {bp_id}")

    def cancel_next(self) -> None:
        self.log.append("cancel_next")


@dataclass
class FakeTarget:
    map_impl: str = "swiss"
    goarch: str = "amd64"


@dataclass
class FakeSession:
    client: FakeClient
    mode: str = "connect"
    target: FakeTarget = field(default_factory=FakeTarget)

    def owns(self, b: Breakpoint | None) -> bool:
        return b is not None and b.name.startswith(OURS)


def _source(script: list[DebuggerState], mode: str = "connect") -> tuple[StopSource, FakeClient]:
    client = FakeClient(script)
    maps = [WatchedMap(mode="heap", header=0x1000)]
    src = StopSource(FakeSession(client, mode), maps, ("delete",))  # type: ignore[arg-type]
    src.entry_ids = {1}
    return src, client


HIT = Hit(
    entry="runtime.mapdelete_fast64",
    goroutine=7,
    map_type=0x10,
    map_addr=0x1000,
    key=KeyArg(is_string=False, value=3),
    location=Location("main.f", "main.go", 9),
    via="",
    caller_frame=1,
    return_addr=0x4000,
)
SITE = _Return(Breakpoint.from_json(bp(5, OURS + "5")), goroutine=7)


def test_step_out_ends_when_the_step_is_done() -> None:
    src, client = _source([])
    end = state((7, None))
    st, users = src.returned(HIT, None, end)
    assert st is end and users == "" and client.log == []


def test_another_goroutine_at_a_users_breakpoint_mid_call_hands_the_program_back() -> None:
    src, client = _source([])
    with pytest.raises(UsersStop, match="breakpoint 9"):
        src.returned(HIT, None, state((3, bp(9, "theirs")), next_in_progress=True))
    assert client.log == ["cancel_next"]  # the step out is cancelled, the program stays


def test_a_launched_program_passes_other_stops_until_the_call_ends() -> None:
    src, client = _source([state((7, bp(5, OURS + "5")))], mode="launch")
    st, users = src.returned(HIT, SITE, state((3, bp(1, OURS + "1"))))
    assert users == "" and client.log == ["continue"]
    assert [t.goroutine_id for t in st.threads] == [7]  # ended at the call's return


def test_the_users_breakpoint_where_the_call_ends_is_reported_with_it() -> None:
    src, _ = _source([])
    both = state((7, bp(5, OURS + "5")), (2, bp(9, "theirs")))
    st, users = src.returned(HIT, SITE, both)
    assert st is both and users.startswith("breakpoint 9 at")


def test_a_return_breakpoint_hit_by_a_call_not_watched_is_dropped() -> None:
    """Another goroutine stopped at a return breakpoint of dlvsnap's other than the one
    awaited: its site steps out from now on; the wait goes on."""
    src, client = _source([state((7, bp(5, OURS + "5")))])
    src._return_ids[6] = 0x5000
    src._returns[0x5000] = _Return(Breakpoint.from_json(bp(6, OURS + "6")), goroutine=4)
    st, users = src.returned(HIT, SITE, state((4, bp(6, OURS + "6"))))
    assert users == "" and client.log == ["clear 6", "continue"]
    assert [t.goroutine_id for t in st.threads] == [7]
    assert src._returns[0x5000] is None


def test_dlvsnaps_own_breakpoint_is_never_taken_for_the_users() -> None:
    """A stop at a return breakpoint dlvsnap already dropped (its id no longer in any table)
    is still dlvsnap's: by its name."""
    src, _ = _source([state((7, bp(5, OURS + "5")))])
    assert src.users_stop(state((4, bp(6, OURS + "6")))) == ""


def test_a_call_that_never_returns() -> None:
    """Waiting at the return breakpoint, the call's own goroutine enters a map entry point
    again: the call did not return (a panic inside the runtime)."""
    src, _ = _source([])
    with pytest.raises(TargetError, match="did not return"):
        src.returned(HIT, SITE, state((7, bp(1, OURS + "1"))))


def test_until_reached_by_another_goroutine_mid_call_is_kept_and_passed() -> None:
    """--until LOCATION reached by goroutine 3 while goroutine 7's call is in flight: not a
    stop of the user's, even at a breakpoint of theirs standing for LOCATION; passed (the
    call ends first) and kept as in flight."""
    src, client = _source([state((7, bp(5, OURS + "5")))])
    src.until_ids = frozenset({9})
    st, users = src.returned(HIT, SITE, state((3, bp(9, "theirs"))))
    assert users == "" and client.log == ["continue"]
    assert [t.goroutine_id for t in st.threads] == [7]
    assert src.until_reached is not None
    assert (src.until_reached.goroutine, src.until_reached.in_flight) == (3, True)


def test_until_where_the_call_returns_leaves_the_program_there() -> None:
    """LOCATION is the call's return address (its site steps out): the stop that ends the
    call is at LOCATION, so the program is stopped there, not run on from it."""
    src, _ = _source([])
    src.until_ids = frozenset({12})
    end = state((7, bp(12, OURS + "12")))
    st, users = src.returned(HIT, None, end)
    assert st is end and users == ""
    assert src.until_reached is not None
    assert (src.until_reached.goroutine, src.until_reached.in_flight) == (7, False)


def test_a_frame_holds_the_stack_addresses_between_its_callees_cfa_and_its_own() -> None:
    from dlvsnap.delve.types import Frame
    from dlvsnap.watch.until import Holder, _holding

    frames = [
        Frame(1, "map.go", 1, "runtime.mapdelete_fast64", frame_offset=-900),
        Frame(2, "main.go", 12, "main.del", frame_offset=-880),
        Frame(3, "main.go", 25, "main.main", frame_offset=-144),
        Frame(4, "proc.go", 290, "runtime.main", frame_offset=-32),
    ]
    assert _holding(frames, -448) == Holder("main.main", -144)
    assert _holding(frames, -890) == Holder("main.del", -880)
    assert _holding(frames, -10) is None
