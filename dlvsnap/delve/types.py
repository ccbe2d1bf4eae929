"""Typed, frozen views of the Delve API v2 wire objects dlvsnap uses.

Field names follow the JSON keys of ``service/api/types.go`` (see
../shared/reference/delve-json-rpc.md). Only what dlvsnap reads is modelled; each
``from_json`` tolerates missing keys because older Delve releases omit some of them.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
# A Delve release number, first in its version line (``1.27.2``, ``v1.25.0``, ``1.27.2-dev``).
_DELVE_RELEASE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")

# Variable.kind is a reflect.Kind (dlvsnap.kinds.Kind).


@dataclass(frozen=True)
class LoadConfig:
    """api.LoadConfig (no json tags: keys are the Go field names)."""

    follow_pointers: bool = False
    max_variable_recurse: int = 0
    max_string_len: int = 64
    max_array_values: int = 0
    max_struct_fields: int = -1

    def to_json(self) -> JSON:
        return {
            "FollowPointers": self.follow_pointers,
            "MaxVariableRecurse": self.max_variable_recurse,
            "MaxStringLen": self.max_string_len,
            "MaxArrayValues": self.max_array_values,
            "MaxStructFields": self.max_struct_fields,
        }


@dataclass(frozen=True)
class Variable:
    name: str
    addr: int
    type: str
    real_type: str
    kind: int
    value: str
    len: int
    base: int
    flags: int
    unreadable: str
    children: tuple[Variable, ...]
    string_bytes: bytes | None = None

    @classmethod
    def from_json(cls, j: JSON, *, children: bool = True) -> Variable:
        """``children`` False: the variable alone, its children left unparsed (what a
        census needs of a root: its name, address, type and map header)."""
        raw = j.get("StringValueBytes")
        return cls(
            name=j.get("name", ""),
            addr=int(j.get("addr", 0)),
            type=j.get("type", ""),
            real_type=j.get("realType", ""),
            kind=int(j.get("kind", 0)),
            value=j.get("value", ""),
            len=int(j.get("len", 0)),
            base=int(j.get("base", 0)),
            flags=int(j.get("flags", 0)),
            unreadable=j.get("unreadable", ""),
            children=tuple(cls.from_json(c) for c in (j.get("children") or ())) if children else (),
            string_bytes=base64.b64decode(raw) if raw else None,
        )

    def as_int(self) -> int:
        """The integer in ``value`` (pointers: the pointee address, as Delve prints it)."""
        v = self.value.strip()
        if v.startswith("0x"):
            return int(v, 16)
        return int(v)


@dataclass(frozen=True)
class Function:
    name: str
    entry: int

    @classmethod
    def from_json(cls, j: JSON | None) -> Function | None:
        if not j:
            return None
        return cls(name=j.get("name", ""), entry=int(j.get("value", 0)))


@dataclass(frozen=True)
class Frame:
    """One api.Stackframe (Location keys flattened)."""

    pc: int
    file: str
    line: int
    function: str
    # the frame's canonical frame address minus its goroutine's stack top (Delve's
    # FrameOffset, negative; stack copies keep it): which frame holds a stack address
    frame_offset: int = 0

    @classmethod
    def from_json(cls, j: JSON) -> Frame:
        fn = Function.from_json(j.get("function"))
        return cls(
            pc=int(j.get("pc", 0)),
            file=j.get("file", ""),
            line=int(j.get("line", 0)),
            function=fn.name if fn else "",
            frame_offset=int(j.get("FrameOffset", 0)),
        )


@dataclass(frozen=True)
class Goroutine:
    """One api.Goroutine: its id and where its user code is."""

    id: int
    user_function: str  # the function of its topmost frame outside the runtime

    @classmethod
    def from_json(cls, j: JSON) -> Goroutine:
        loc = j.get("userCurrentLoc") or j.get("currentLoc") or {}
        fn = Function.from_json(loc.get("function"))
        return cls(int(j.get("id", 0)), fn.name if fn else "")


@dataclass(frozen=True)
class BreakpointInfo:
    stacktrace: tuple[Frame, ...]
    variables: tuple[Variable, ...]
    arguments: tuple[Variable, ...]

    @classmethod
    def from_json(cls, j: JSON | None) -> BreakpointInfo | None:
        if not j:
            return None
        return cls(
            stacktrace=tuple(Frame.from_json(f) for f in (j.get("stacktrace") or ())),
            variables=tuple(Variable.from_json(v) for v in (j.get("variables") or ())),
            arguments=tuple(Variable.from_json(v) for v in (j.get("arguments") or ())),
        )


@dataclass(frozen=True)
class Breakpoint:
    id: int
    name: str
    addrs: tuple[int, ...]
    function_name: str
    cond: str
    raw: JSON = field(compare=False, repr=False)

    @classmethod
    def from_json(cls, j: JSON) -> Breakpoint:
        return cls(
            id=int(j.get("id", 0)),
            name=j.get("name", ""),
            addrs=tuple(int(a) for a in (j.get("addrs") or ())),
            function_name=j.get("functionName", ""),
            cond=j.get("Cond", ""),
            raw=j,
        )


@dataclass(frozen=True)
class Thread:
    id: int
    pc: int
    file: str
    line: int
    function: str
    goroutine_id: int
    breakpoint: Breakpoint | None
    breakpoint_info: BreakpointInfo | None

    @classmethod
    def from_json(cls, j: JSON) -> Thread:
        fn = Function.from_json(j.get("function"))
        bp = j.get("breakPoint")
        return cls(
            id=int(j.get("id", 0)),
            pc=int(j.get("pc", 0)),
            file=j.get("file", ""),
            line=int(j.get("line", 0)),
            function=fn.name if fn else "",
            goroutine_id=int(j.get("goroutineID", 0)),
            breakpoint=Breakpoint.from_json(bp) if bp else None,
            breakpoint_info=BreakpointInfo.from_json(j.get("breakPointInfo")),
        )


@dataclass(frozen=True)
class DebuggerState:
    pid: int
    running: bool
    exited: bool
    exit_status: int
    next_in_progress: bool
    current_goroutine_id: int
    stop_reason: str
    # the watchpoints Delve removed at this stop: their frame returned (stack watchpoints)
    watch_out_of_scope: tuple[int, ...] = ()
    raw_threads: tuple[JSON, ...] = field(default=(), repr=False)
    raw_current: JSON | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, j: JSON) -> DebuggerState:
        cg = j.get("currentGoroutine") or {}
        return cls(
            pid=int(j.get("Pid", 0)),
            running=bool(j.get("Running", False)),
            exited=bool(j.get("exited", False)),
            exit_status=int(j.get("exitStatus", 0)),
            next_in_progress=bool(j.get("NextInProgress", False)),
            current_goroutine_id=int(cg.get("id", 0)),
            stop_reason=j.get("stopReason", ""),
            watch_out_of_scope=tuple(int(b.get("id", 0)) for b in j.get("WatchOutOfScope") or ()),
            raw_threads=tuple(j.get("Threads") or ()),
            raw_current=j.get("currentThread"),
        )

    # Threads are parsed when asked for: a stop lists every thread, and the one at a
    # breakpoint carries a stack trace and arguments (most stops need one thread or none).
    @functools.cached_property
    def threads(self) -> tuple[Thread, ...]:
        return tuple(Thread.from_json(t) for t in self.raw_threads)

    @functools.cached_property
    def current_thread(self) -> Thread | None:
        ct = self.raw_current
        return Thread.from_json(ct) if ct else None

    @functools.cached_property
    def _at_breakpoints(self) -> tuple[Thread, ...]:
        return tuple(Thread.from_json(t) for t in self.raw_threads if t.get("breakPoint"))

    def threads_at_breakpoints(self) -> list[Thread]:
        """Every thread stopped on a breakpoint: simultaneous hits are all reported here."""
        return list(self._at_breakpoints)


@dataclass(frozen=True)
class Version:
    delve_version: str
    api_version: int
    target_go_version: str
    min_go: str
    max_go: str

    @classmethod
    def from_json(cls, j: JSON) -> Version:
        return cls(
            delve_version=j.get("DelveVersion", ""),
            api_version=int(j.get("APIVersion", 0)),
            target_go_version=j.get("TargetGoVersion", ""),
            min_go=j.get("MinSupportedVersionOfGo", ""),
            max_go=j.get("MaxSupportedVersionOfGo", ""),
        )

    @property
    def short(self) -> str:
        """``1.27.2`` from ``Version: 1.27.2\\nBuild: ...``."""
        first = self.delve_version.splitlines()[0] if self.delve_version else ""
        return first.removeprefix("Version:").strip()

    @property
    def numbers(self) -> tuple[int, ...]:
        """(1, 27, 2) of ``short``, to compare releases; () when it names none (a dev build
        says ``1.27.2-dev``: still (1, 27, 2))."""
        m = _DELVE_RELEASE.match(self.short)
        return tuple(int(x) for x in m.groups()) if m else ()


@dataclass(frozen=True)
class DumpState:
    """api.DumpState: a core dump in progress (DumpStart, DumpWait). It is over when
    ``dumping`` is false, and succeeded only if ``all_done`` and no ``err`` (a cancelled
    dump ends with neither)."""

    dumping: bool
    all_done: bool
    threads_done: int
    threads_total: int
    mem_done: int
    mem_total: int
    err: str

    @classmethod
    def from_json(cls, j: JSON) -> DumpState:
        return cls(
            dumping=bool(j.get("Dumping", False)),
            all_done=bool(j.get("AllDone", False)),
            threads_done=int(j.get("ThreadsDone", 0)),
            threads_total=int(j.get("ThreadsTotal", 0)),
            mem_done=int(j.get("MemDone", 0)),
            mem_total=int(j.get("MemTotal", 0)),
            err=str(j.get("Err") or ""),
        )
