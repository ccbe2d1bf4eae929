"""The watch engine: resolve the map, place breakpoints, loop over stops, snapshot before and
after every delete of that map, and hand events to a sink.

Which map is watched
--------------------
* ``--map`` naming a package variable (``main.cache``, ``example.com/pkg.Var``): the watch
  follows the *variable*. The breakpoint condition dereferences the variable's address
  (``uintptr(m) == *(*uintptr)(ADDR)``), so if the program assigns it a new map, the new
  map's deletes are watched and a ``replaced`` note is emitted.
* any other expression (``m``, ``s.byID``) is evaluated in the frame of the function that
  calls delete (the first frame outside runtime, internal/ and reflect), at each delete
  until it names the map being deleted from. From then on the watch follows that map
  *object*: a later ``m = make(...)`` is not followed. A header on the heap never moves.
  A header on a goroutine's stack moves when that stack grows; the condition then matches
  on the goroutine and the header's distance from the stack top, which copystack keeps, so
  no delete is lost (``moved`` is reported on the event).

Breakpoints go on every delete entry point in the binary (runtime.mapdelete, _fast32,
_fast64, _faststr and runtime.mapclear; reflect's entry points call these and are reported
as ``via``). The "after" snapshot is taken when ``stepOut`` returns to the caller.

What is read around a delete
----------------------------
dlvsnap hashes the deleted key itself (dlvsnap.hashing: the runtime's AES hash on amd64,
with the map's seed and the process's aeskeysched) and reads only what the delete can
touch: the header, the table headers and the key's probe groups (swiss), or the key's
bucket chain (classic, when not growing); the same groups again after the delete. So the
cost of a delete does not grow with the map. The hash is trusted only after it has been
checked against a whole snapshot of the map (the h2/tophash and place of up to 64 live
keys), and every delete's count is checked against what the probe found. Otherwise, and
for clears, ``--full``, classic maps while they grow, and keys the runtime hashes in a way
dlvsnap does not (interfaces, structs...), both snapshots cover the whole map.
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from dlvsnap.decode import Decoder, SwissDecoder, decode_map_type, make_decoder
from dlvsnap.decode.keys import KeyDecoder
from dlvsnap.delve.client import BreakpointSpec, DelveClient
from dlvsnap.delve.types import (
    KIND_MAP,
    KIND_STRING,
    Breakpoint,
    DebuggerState,
    Frame,
    LoadConfig,
    Thread,
    Variable,
)
from dlvsnap.diff import diff
from dlvsnap.errors import (
    DlvsnapError,
    LayoutDriftError,
    LayoutError,
    MapResolutionError,
    MemoryReadError,
    NoDeletesError,
    RPCError,
    TargetError,
    UsageError,
)
from dlvsnap.hashing import AESKEYSCHED, HASHERS, USE_AESHASH, KeyHasher
from dlvsnap.layouts import Layout, load_layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import (
    DeleteEvent,
    KeyValue,
    Location,
    MapDiff,
    MapSnapshot,
    MapType,
    Summary,
)
from dlvsnap.session import Session
from dlvsnap.target import elf_symbols
from dlvsnap.verify import check_binary

# The runtime entry points of each operation --ops can watch.
OPS = {
    "delete": r"mapdelete(_fast32|_fast64|_faststr)?",
    "clear": r"mapclear",
    "assign": r"mapassign(_fast32|_fast32ptr|_fast64|_fast64ptr|_faststr)?",
}
DEFAULT_OPS = ("delete", "clear")


def ops_regex(ops: tuple[str, ...]) -> str:
    return rf"^runtime\.({'|'.join(OPS[o] for o in ops)})$"


def op_of(entry: str) -> str:
    if entry.endswith("mapclear"):
        return "clear"
    return "assign" if "mapassign" in entry else "delete"


_SKIP_FRAME = re.compile(r"^(runtime\.|internal/|reflect\.|maps\.)")
_REFLECT_ENTRY = re.compile(r"^reflect\.map(delete|delete_faststr|clear)$")
STACK_DEPTH = 12
# Evaluated by Delve at every hit and returned with the stop: no extra round trip.
_HIT_VARS = ("runtime.curg.stack.lo", "runtime.curg.stack.hi", "uintptr(runtime.curg)")
# The entry point's return address: on amd64 the CALL pushed it just below the frame's
# canonical frame address (runtime.frameoff is that address minus the stack's top). Once the
# map is known, hits carry this instead of a stack trace, which costs Delve a stack walk and
# a larger reply at every hit; the caller's location is then looked up once per call site.
_RET_VAR = "*(*uintptr)(uintptr(runtime.curg.stack.hi) + uintptr(runtime.frameoff) - 8)"
# Key kinds (reflect.Kind) whose hashing cannot panic: booleans, numbers, strings, pointers,
# channels. An interface key holding a slice, map or func panics inside the call, which then
# never returns to its call site (structs and arrays may hold interfaces).
_SAFE_KEY_KINDS = frozenset([*range(1, 17), 18, 22, 24, 26])


@dataclass
class WatchOptions:
    expr: str
    in_func: str | None = None  # only resolve the expression in this function
    live_keys: bool = False
    max_events: int | None = None
    full: bool = False  # snapshot the whole map around every delete
    ops: tuple[str, ...] = DEFAULT_OPS  # which map operations to watch (OPS)
    # Resume the program as soon as an event's snapshots are read, and diff and render it
    # while the program runs to the next stop. Only for an on_event that does not talk to
    # Delve or expect the program stopped (the CLI's renderers).
    pipeline: bool = False
    crosscheck: bool = False  # also take whole snapshots and report where the probe differs


@dataclass
class Note:
    """Something the user should know that is not a delete (replaced map, moved header)."""

    kind: str
    message: str
    data: dict[str, object] = field(default_factory=dict)


class _UsersStopError(Exception):
    """The user's breakpoint stopped the program while dlvsnap stepped out of a call."""


@dataclass
class _Hit:
    thread: Thread
    entry: str
    typ: int
    map_addr: int
    key_arg: Variable | None
    stack_lo: int
    stack_hi: int
    g_addr: int
    user_frame: int
    location: Location
    via: str
    ret: int  # the call's return address when the caller called the entry point directly


@dataclass(frozen=True)
class _Caller:
    frame: int  # the caller's frame in the goroutine's stack (0: the entry point's)
    location: Location
    via: str  # the reflect entry point the call went through, if any


@dataclass
class _Return:
    """A breakpoint on a call site's return address (see _return_site)."""

    bp: Breakpoint
    goroutine: int  # the goroutine its condition names


@dataclass(frozen=True)
class _Lean:
    """A breakpoint whose hits no longer carry the entry point's arguments (_make_lean)."""

    typ: int  # the map type, from its first hit
    key: str  # the key parameter's name ("" for mapclear)


@dataclass
class _Target:
    """How the watched map is recognised in breakpoint conditions."""

    mode: str  # "discover" | "var" | "heap" | "stack"
    var_addr: int = 0
    base: int = 0
    goroutine: int = 0
    stack_off: int = 0  # stack.hi - base, for a header on a goroutine stack


# Delve's answer to an expression it cannot parse: "1:3: expected operand, found 'EOF'"
_PARSE_ERROR = re.compile(r"^\d+:\d+: ")
_ROOT = re.compile(r'^[*&(\s]*(?:"([^"]+)"|([A-Za-z_]\w*))\.([A-Za-z_]\w*)')


def _package_root(expr: str) -> tuple[str, str] | None:
    """The package and package variable an expression starts with if its first name is a
    package's: ``main.srv.byID`` -> ("main", "main.srv"), ``"example.com/p".V[1]`` ->
    ("example.com/p", "example.com/p.V"). ``c.items`` gives ("c", "c.items"): whether
    ``c`` is a package or a local is for the binary to say. None for ``m``, ``(*c).x``."""
    m = _ROOT.match(expr)
    if not m:
        return None
    pkg = m.group(1) or m.group(2)
    return pkg, f"{pkg}.{m.group(3)}"


def normalise_expr(expr: str) -> str:
    """``example.com/pkg.Var`` -> ``"example.com/pkg".Var`` (Delve's package-path syntax)."""
    if "/" in expr and not expr.startswith('"'):
        pkg, _, rest = expr.rpartition(".")
        if pkg and "/" in pkg and re.fullmatch(r"[\w.\-/]+", pkg):
            return f'"{pkg}".{rest}'
    return expr


class MapWatch:
    def __init__(
        self,
        session: Session,
        opts: WatchOptions,
        on_event: Callable[[DeleteEvent], None],
        on_note: Callable[[Note], None] | None = None,
    ) -> None:
        self.s = session
        self.c: DelveClient = session.client
        self.opts = opts
        self.expr = normalise_expr(opts.expr)
        self.on_event = on_event
        self.on_note = on_note or (lambda n: None)
        tinfo = session.target
        self.layout: Layout = load_layout(
            tinfo.map_impl, tinfo.go_version, tinfo.ptr_size, tinfo.little_endian
        )
        if not self.layout.exact:
            self._check_inexact_layout()
        # The map pointer parameter of every delete entry point: `m *maps.Map` (swiss),
        # `h *hmap` (classic). Conditions name it; arguments are read by position.
        self.map_arg = "m" if tinfo.map_impl == "swiss" else "h"
        self.bps: list[Breakpoint] = []
        self.target = _Target("discover")
        self.summary = Summary()
        self._decoders: dict[int, Decoder] = {}
        self._tried_in: set[str] = set()
        self._not_map = ""  # the type EXPR had where an assign was seen, if not a map
        self._nil_seen: Location | None = None
        self._deletes_seen = 0
        # per map type: a hasher checked against the map (KeyHasher), not yet checked
        # ("pending", hasher), or not usable (a reason)
        self._hashers: dict[int, KeyHasher | tuple[str, KeyHasher] | str] = {}
        self._last: MapSnapshot | None = None  # the last snapshot of the watched map
        self._resumed: int | None = None  # a continue sent ahead (pipeline): its request id
        self._callers: dict[int, _Caller] = {}  # by return address (see _caller)
        self._lean: dict[int, _Lean] = {}  # by breakpoint id
        # by return address: the call site's return breakpoint, or None where the site
        # steps out (its breakpoint stopped a call dlvsnap did not watch)
        self._returns: dict[int, _Return | None] = {}
        self._return_ids: dict[int, int] = {}  # return breakpoint id -> return address
        self._users_stop_after = ""  # a breakpoint of the user's where a watched call ended
        self._entry_ids: set[int] = set()  # the breakpoints on the map's entry points

    def _check_inexact_layout(self) -> None:
        """A Go release newer than layouts/index.toml knows: its nearest older layout is used
        only if the binary's own DWARF agrees with it, field by field."""
        _, layout, report = check_binary(self.s.target.path)
        if not report.ok:
            raise LayoutDriftError(
                f"Go {layout.release} is not in layouts/index.toml and {layout.name} differs "
                f"from the binary's DWARF ({len(report.drifts)} differences; first: "
                f"{report.drifts[0]}): see README 'Bumping Go'"
            )
        self.on_note(
            Note(
                "layout",
                f"Go {layout.release} is not in layouts/index.toml: using "
                f"{layout.name}, verified against the binary's DWARF "
                f"({len(report.checked)} types)",
                {"layout": layout.name},
            )
        )

    # -- set-up ------------------------------------------------------------------------------
    def _resolve_static(self) -> None:
        """An expression rooted at a package variable (``main.cache``, ``main.srv.byID``,
        ``"example.com/pkg".Var``) is checked before the program runs, and followed as that
        variable. Anything else is resolved at the first delete, in the caller's frame,
        even when it evaluates where the program is stopped now (a local of the frame
        ``--connect`` or ``--attach`` found: its stack slot would not follow the map).
        A syntax error, or a package variable that does not exist, is refused at once."""
        root = _package_root(self.expr)
        try:
            v = self.c.eval(self.expr, cfg=LoadConfig())
        except RPCError as e:
            msg = e.message
            if _PARSE_ERROR.match(msg):
                raise UsageError(f"--map {self.opts.expr} is not an expression: {msg}") from None
            if root is None or not self._is_package(root[0]):
                return  # a local: resolved at the first delete, in the caller's frame
            if not self.c.list_package_vars(f"^{re.escape(root[1])}$"):
                raise MapResolutionError(
                    f"unknown variable: {self.opts.expr} ({root[0]} has no package "
                    f"variable {root[1].removeprefix(root[0] + '.')})"
                ) from None
            raise MapResolutionError(f"cannot evaluate {self.opts.expr}: {msg}") from None
        if root is None or not self.c.list_package_vars(f"^{re.escape(root[1])}$"):
            return  # not rooted at a package variable: at the first delete
        self._check_kind(v)
        self.target = _Target("var", var_addr=v.addr)

    def _is_package(self, pkg: str) -> bool:
        """Whether the binary has a package of that path (code or variables in it)."""
        rx = f"^{re.escape(pkg)}\\."
        return bool(self.c.list_functions(rx) or self.c.list_package_vars(rx))

    def _check_in_func(self) -> None:
        f = self.opts.in_func
        if f and not self.c.list_functions(f"^{re.escape(f)}$"):
            raise UsageError(f"--in {f}: the binary has no function of that name")

    def _check_kind(self, v: Variable) -> None:
        if v.kind != KIND_MAP:
            what = v.type or f"kind {v.kind}"
            raise MapResolutionError(f"not a map: {self.opts.expr} is {what}")

    def _cond(self) -> str:
        t, m = self.target, self.map_arg
        if t.mode == "var":
            return f"uintptr({m}) == *(*uintptr)({t.var_addr:#x})"
        if t.mode == "heap":
            return f"uintptr({m}) == {t.base:#x}"
        if t.mode == "stack":
            return (
                f"runtime.curg.goid == {t.goroutine} && "
                f"runtime.curg.stack.hi - uintptr({m}) == {t.stack_off}"
            )
        return ""

    def _place_breakpoints(self) -> None:
        funcs = self.c.list_functions(ops_regex(self.opts.ops))
        if not funcs:
            what = {"delete": "runtime.mapdelete*", "clear": "runtime.mapclear"}
            what["assign"] = "runtime.mapassign*"
            raise NoDeletesError(
                f"the program never does {' or '.join(self.opts.ops)} on a map: no "
                f"{' or '.join(what[o] for o in self.opts.ops)} in the binary"
            )
        cond = self._cond()
        for fn in funcs:
            self.bps.append(
                self.s.create_breakpoint(
                    BreakpointSpec(
                        function_name=fn,
                        cond=cond,
                        stacktrace=0 if self._light() else STACK_DEPTH,
                        variables=self._hit_vars(),
                        load_args=LoadConfig(max_string_len=0, max_struct_fields=0),
                    )
                )
            )

    def _set_conditions(self) -> None:
        cond, hit_vars = self._cond(), self._hit_vars()
        depth = 0 if self._light() else STACK_DEPTH
        self.bps = [self.c.amend_breakpoint(bp, cond, hit_vars, depth) for bp in self.bps]

    def _hit_vars(self) -> tuple[str, ...]:
        """The goroutine's stack bounds matter only while the map may be on a stack: each
        variable costs Delve an evaluation at every hit."""
        stack = _HIT_VARS if self.target.mode in ("discover", "stack") else ()
        return stack + ((_RET_VAR,) if self._light() else ())

    def _light(self) -> bool:
        """Hits without a stack trace (see _RET_VAR): once the map is known (discovery
        evaluates EXPR in the caller's frame), on amd64."""
        return self.target.mode != "discover" and self.s.target.goarch == "amd64"

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> Summary:
        """Watch until the program exits, ``max_events``, or (a program dlvsnap did not
        start) it stops for another reason: a breakpoint of the user's, a halt. The
        breakpoints dlvsnap placed are removed when it stops watching."""
        for _ in self.events():
            pass
        return self.summary

    def events(self) -> Iterator[DeleteEvent]:
        """The same watch as a generator: each event as it is recorded (after on_event).
        Closing it early leaves the program stopped after the last delete yielded. dlvsnap's
        breakpoints are removed at the end, except on Ctrl-C/SIGTERM, when a call may be in
        flight on the connection: the Session's clean-up handles that case."""
        try:
            yield from self._loop()
        except (GeneratorExit, Exception):
            self._clear()
            raise
        self._clear()

    def _clear(self) -> None:
        if self._resumed is not None:  # stopped mid-pipeline (an error): stop the program
            with contextlib.suppress(DlvsnapError):
                self.c.send_command("halt")
                st = self.c.command_reply(self._resumed, timeout=10.0)
                self.summary.exit_status = st.exit_status if st.exited else None
            self._resumed = None
        self.s.clear_owned_breakpoints()  # after an exit too: a restart would set them again

    def _loop(self) -> Iterator[DeleteEvent]:
        self._check_in_func()
        self._resolve_static()
        self._place_breakpoints()
        self._entry_ids = {bp.id for bp in self.bps}  # amending keeps a breakpoint's id
        while True:
            if self._resumed is not None:
                st, self._resumed = self.c.command_reply(self._resumed), None
            else:
                st = self.c.command("continue")
            if st.exited:
                self.summary.exit_status = st.exit_status
                self._finish(st)
                return
            hits = [
                t
                for t in st.threads_at_breakpoints()
                if t.breakpoint and t.breakpoint.id in self._entry_ids
            ]
            if self._drop_returns(st) and not hits and not self._users_stop(st):
                continue
            if not hits and self.s.mode != "launch":
                self._stopped(self._users_stop(st) or "a stop dlvsnap did not ask for (halt?)")
                return
            for th in hits:
                hit = self._parse_hit(th)
                self._deletes_seen += 1
                if self._is_watched(hit):
                    try:
                        yield self._record(hit, st)
                    except _UsersStopError as stop:
                        msg = (
                            f"the program stopped at {stop} during a watched call, which is "
                            "not reported: watch ends here"
                        )
                        self.on_note(Note("stopped", msg))
                        self.summary.stopped_early = True
                        return
                    if self._users_stop_after:
                        self._stopped(self._users_stop_after)
                        return
                    if (
                        self.opts.max_events is not None
                        and self.summary.events >= self.opts.max_events
                    ):
                        self.summary.stopped_early = True
                        return
                    break  # ending the call resumed the target: other hits of this stop are gone

    def _stopped(self, why: str) -> None:
        self.on_note(Note("stopped", f"the program stopped at {why}: watch ends here"))
        self.summary.stopped_early = True

    def _users_stop(self, st: DebuggerState) -> str:
        """A breakpoint of someone else's in this stop ("" if none)."""
        for t in st.threads_at_breakpoints():
            if t.breakpoint and not self.s.owns(t.breakpoint):
                return f"breakpoint {t.breakpoint.id} at {Location(t.function, t.file, t.line)}"
        return ""

    def _finish(self, st: DebuggerState) -> None:
        """At exit: how the program ended if not with status 0; why no delete was seen."""
        if self.summary.events:
            if st.exit_status:
                self.on_note(
                    Note(
                        "exited",
                        f"the program {exit_words(st.exit_status)}",
                        {"exit_status": st.exit_status},
                    )
                )
            return
        if self._nil_seen is not None:
            raise MapResolutionError(
                f"nil map: {self.opts.expr} was nil when the program deleted from it "
                f"({self._nil_seen}); delete on a nil map does nothing"
            )
        if self.target.mode == "discover" and self._not_map:
            raise MapResolutionError(f"not a map: {self.opts.expr} is {self._not_map}")
        if self.target.mode == "discover" and self._tried_in:
            raise MapResolutionError(
                f"unknown variable: {self.opts.expr} is not visible in any function that "
                f"deleted from a map ({', '.join(sorted(self._tried_in))})"
            )
        where = f" from {self.opts.expr}" if self._deletes_seen else ""
        raise NoDeletesError(f"the program {exit_words(st.exit_status)} before any delete{where}")

    def _parse_hit(self, th: Thread) -> _Hit:
        info, bp = th.breakpoint_info, th.breakpoint
        assert info is not None and bp is not None
        var = {v.name: v for v in info.variables}
        lean = self._lean.get(bp.id)
        if lean is not None:
            typ, map_addr = lean.typ, self._lean_map_addr(var)
            key_arg = var.get(lean.key) if lean.key else None
        else:
            args = info.arguments
            if len(args) < 2:
                n = len(args)
                raise TargetError(f"{th.function}: Delve returned {n} arguments, expected t, m")
            typ, map_addr = _pointer_arg(th, args[0]), _pointer_arg(th, args[1])
            key_arg = args[2] if len(args) > 2 else None
            if self._light() and self.target.mode in ("var", "heap") and map_addr:
                # the condition matched the watched map itself (a package variable may
                # still be nil, and a nil map of any type matches it then; a stack offset
                # may be another frame's map)
                self._make_lean(bp.id, typ, args)
        ret = _int_var(var, _RET_VAR)
        caller = self._caller(th, info.stacktrace, ret)
        return _Hit(
            thread=th,
            entry=th.function,
            typ=typ,
            map_addr=map_addr,
            key_arg=key_arg,
            stack_lo=_int_var(var, _HIT_VARS[0]),
            stack_hi=_int_var(var, _HIT_VARS[1]),
            g_addr=_int_var(var, _HIT_VARS[2]),
            user_frame=caller.frame,
            location=caller.location,
            via=caller.via,
            ret=ret if self._callers.get(ret) is caller else 0,
        )

    def _make_lean(self, bp_id: int, typ: int, args: tuple[Variable, ...]) -> None:
        """After a breakpoint's first hit once the map is known: it stops loading the entry
        point's arguments, which Delve converts at every hit. Its hits then carry only the
        key, evaluated by the name this hit gave it (names differ between entry points and
        releases); the map type is this hit's (the watched map's type never changes) and
        the map's address follows from the condition (``_lean_map_addr``)."""
        key = args[2].name if len(args) > 2 else ""
        i = next(i for i, b in enumerate(self.bps) if b.id == bp_id)
        hit_vars = self._hit_vars() + ((key,) if key else ())
        self.bps[i] = self.c.amend_breakpoint(
            self.bps[i], self._cond(), hit_vars, 0, load_args=False
        )
        self._lean[bp_id] = _Lean(typ, key)

    # -- the end of a call ------------------------------------------------------------------------
    def _return_site(self, hit: _Hit) -> _Return | None:
        """The breakpoint on the return address of a call made directly from its call site:
        a ``continue`` then ends the call, cheaper for Delve than ``stepOut`` (no stack walk,
        no temporary breakpoint set and cleared at each call). Its condition names the
        calling goroutine, amended when another one calls from there. None (step out) where
        the return address is unknown, the caller is not the call site (reflect), another
        breakpoint is already there, or that site's breakpoint once stopped a call dlvsnap
        did not watch (see _drop_returns). Not asked for keys whose hashing may panic
        (_SAFE_KEY_KINDS): stepOut also stops in the caller's deferred calls."""
        g = hit.thread.goroutine_id
        if not hit.ret or g <= 0 or (hit.ret in self._returns and not self._returns[hit.ret]):
            return None
        cond = f"runtime.curg.goid == {g}"
        site = self._returns.get(hit.ret)
        if site is None:
            try:
                bp = self.s.create_breakpoint(BreakpointSpec(addrs=(hit.ret,), cond=cond))
            except RPCError:  # a breakpoint of the user's there (--connect): step out
                self._returns[hit.ret] = None
                return None
            site = self._returns[hit.ret] = _Return(bp, g)
            self._return_ids[bp.id] = hit.ret
        elif site.goroutine != g:
            site.bp, site.goroutine = self.c.amend_breakpoint(site.bp, cond), g
        return site

    def _returned(self, hit: _Hit, site: _Return | None, st: DebuggerState) -> DebuggerState:
        """The stop at the end of the call: stepOut's, or the call's goroutine at its
        return breakpoint. Other goroutines' stops on the way are passed (the user's end
        the watch); a return breakpoint hit by a call dlvsnap did not watch is dropped."""
        g = hit.thread.goroutine_id
        while not st.exited:
            ours = site is not None and any(
                t.breakpoint and t.breakpoint.id == site.bp.id and t.goroutine_id == g
                for t in st.threads_at_breakpoints()
            )
            self._drop_returns(st, site)
            if ours or (site is None and not st.next_in_progress):
                # a breakpoint of the user's at the same stop (on the return address, or
                # another goroutine's): the event is reported, then the watch ends there
                if self.s.mode != "launch":
                    self._users_stop_after = self._users_stop(st)
                return st
            if self.s.mode != "launch" and self._users_stop(st):
                # another goroutine stopped for the user mid-call: hand the program back
                if site is None:
                    self.c.cancel_next()
                raise _UsersStopError(self._users_stop(st))
            if site is not None and any(
                t.goroutine_id == g and t.breakpoint and t.breakpoint.id in self._entry_ids
                for t in st.threads_at_breakpoints()
            ):
                raise TargetError(
                    f"{hit.entry} called at {hit.location} did not return (did it panic?)"
                )
            st = self.c.command("continue")  # another goroutine stopped first
        return st

    def _drop_returns(self, st: DebuggerState, awaited: _Return | None = None) -> bool:
        """Remove the return breakpoints this stop hit other than ``awaited``: their call
        sites also call for maps (or goroutines) dlvsnap does not watch, so they step out
        from now on. Whether there were any."""
        dropped = False
        for t in st.threads_at_breakpoints():
            bp_id = t.breakpoint.id if t.breakpoint else 0
            if bp_id in self._return_ids and (awaited is None or bp_id != awaited.bp.id):
                self._returns[self._return_ids.pop(bp_id)] = None
                self.c.clear_breakpoint(bp_id)
                dropped = True
        return dropped

    def _lean_map_addr(self, var: dict[str, Variable]) -> int:
        """The map a lean breakpoint's condition matched: the variable's map (var), the
        header at its offset from the goroutine's stack top (stack), or the map (heap)."""
        t = self.target
        if t.mode == "stack":
            return _int_var(var, _HIT_VARS[1]) - t.stack_off
        if t.mode == "var":
            p = self.layout.ptr_size
            raw = self.s.memory(t.var_addr, p).read(t.var_addr, p)
            return int.from_bytes(raw, self.layout.order)
        return t.base

    def _caller(self, th: Thread, frames: tuple[Frame, ...], ret: int) -> _Caller:
        """Where the program called the entry point: the first frame outside the runtime,
        reflect and generic map code, and the reflect entry on the way, if any. A hit with
        no stack trace (``_light``) gives its return address ``ret``: the call site's answer
        is kept when every frame up to the caller's is at that address (the caller, and
        functions inlined into it, called the entry point directly); else a stack trace
        is asked for at this hit."""
        if not frames:
            known = self._callers.get(ret) if ret else None
            if known is not None:
                return known
            frames = tuple(self.c.stacktrace(th.goroutine_id, STACK_DEPTH))
        user = next(
            (i for i, f in enumerate(frames) if i > 0 and not _SKIP_FRAME.match(f.function)),
            1 if len(frames) > 1 else 0,
        )
        via = next((f.function for f in frames[1:user] if _REFLECT_ENTRY.match(f.function)), "")
        uf = frames[user] if frames else None
        out = _Caller(
            user,
            Location(uf.function, uf.file, uf.line) if uf else Location("?", "?", 0),
            via,
        )
        if ret and user > 0 and all(f.pc == ret for f in frames[1 : user + 1]):
            self._callers[ret] = out
        return out

    def _is_watched(self, hit: _Hit) -> bool:
        t = self.target
        if t.mode == "discover":
            return self._discover(hit)
        if t.mode == "var" and hit.map_addr == 0:
            self._nil_seen = self._nil_seen or hit.location
            return False
        if t.mode in ("var", "stack") and t.base and hit.map_addr != t.base:
            # var: the condition reads the variable, so this is the map it names now;
            # stack: the condition matched goroutine and stack offset, so the header moved.
            kind, what = (
                ("replaced", f"{self.opts.expr} now names another map")
                if t.mode == "var"
                else ("moved", "the map's header moved with its goroutine's stack")
            )
            follow = "; following the variable" if t.mode == "var" else ""
            self.on_note(
                Note(
                    kind,
                    f"{what}: header {t.base:#x} -> {hit.map_addr:#x}{follow}",
                    {"old": t.base, "new": hit.map_addr},
                )
            )
        if t.mode in ("var", "stack"):
            t.base = hit.map_addr
        return True  # the breakpoint condition already matched this map

    def _discover(self, hit: _Hit) -> bool:
        fn = hit.location.function
        if self.opts.in_func and fn != self.opts.in_func:
            return False
        try:
            v = self.c.eval(
                self.expr, goroutine=hit.thread.goroutine_id, frame=hit.user_frame, cfg=LoadConfig()
            )
        except RPCError:
            self._tried_in.add(fn)
            return False
        if v.kind != KIND_MAP and op_of(hit.entry) == "assign":
            # library code assigns to its own maps from frames where EXPR is something else
            self._not_map = self._not_map or v.type
            return False
        self._check_kind(v)
        if v.base == 0:
            if hit.map_addr == 0:
                self._nil_seen = hit.location
            return False
        if v.base != hit.map_addr:
            return False
        if hit.stack_lo <= hit.map_addr < hit.stack_hi:
            self.target = _Target(
                "stack",
                base=hit.map_addr,
                goroutine=hit.thread.goroutine_id,
                stack_off=hit.stack_hi - hit.map_addr,
            )
        else:
            self.target = _Target("heap", base=hit.map_addr)
        self._set_conditions()
        return True

    # -- one delete ----------------------------------------------------------------------------
    def _decoder(self, typ: int, mem: MemoryReader) -> Decoder:
        """One decoder per map type (the reader is the session's, chosen once)."""
        dec = self._decoders.get(typ)
        if dec is None:
            mt = decode_map_type(self.layout, mem, typ)
            dec = self._decoders[typ] = make_decoder(self.layout, mem, mt)
        return dec

    def _record(self, hit: _Hit, st: DebuggerState) -> DeleteEvent:
        mem = self.s.memory(hit.map_addr, 8)
        dec = self._decoder(hit.typ, mem)
        key, decoded = self._deleted_key(hit, dec.keys, mem)
        op = op_of(hit.entry)
        hasher = self._hasher(hit.typ, dec, mem) if op != "clear" and decoded else None
        data = dec.keys.hash_input(key) if isinstance(hasher, KeyHasher) else None
        site = self._return_site(hit) if dec.keys.kt.kind in _SAFE_KEY_KINDS else None
        if site is None and st.current_goroutine_id != hit.thread.goroutine_id:
            self.c.command("switchGoroutine", goroutineID=hit.thread.goroutine_id)
        resume = "stepOut" if site is None else "continue"  # to the call's end
        probed, stepping, check_before = self._probe(
            hit, dec, hasher=hasher, data=data, key=key, op=op, resume=resume
        )
        before, found = probed if probed else (dec.snapshot(hit.map_addr), None)
        if isinstance(hasher, tuple) and not before.partial:
            self._check_hasher(hit.typ, dec, hasher[1], before)
        if stepping is None and self.opts.crosscheck:
            check_before = dec.snapshot(hit.map_addr)
        if stepping is None:
            stepping = self.c.send_command(resume)
        after_st = self._returned(hit, site, self.c.command_reply(stepping))
        if after_st.exited:
            raise TargetError(f"the program exited inside {hit.entry}")
        after_addr = self._after_addr(hit, mem)
        last = self.opts.max_events is not None and self.summary.events + 1 >= self.opts.max_events
        pipelined = self.opts.pipeline and not last and not self._users_stop_after
        # pipeline, a delete's scalar keys: the bytes the read after it needs, read raw now
        # and decoded once the program runs again
        captured = (
            dec.recapture(after_addr, before)
            if pipelined
            and op == "delete"
            and not self.opts.live_keys
            and dec.keys.scalar_dtype() is not None
            else None
        )

        def read_after(reader: Decoder) -> tuple[MapSnapshot, list[str]]:
            return self._after(hit.typ, reader, after_addr, before, found=found, op=op, key=key)

        if captured is None:
            after, warnings = read_after(dec)
        check_after = dec.snapshot(after_addr) if check_before is not None else None
        if pipelined:
            # every byte of this event is read: let the program run while it is decoded,
            # diffed and rendered
            self._resumed = self.c.send_command("continue")
        if captured is not None:
            after, warnings = read_after(dec.over(captured))
        d = diff(before, after)
        if check_before is not None and check_after is not None:
            warnings += _crosscheck(d, diff(check_before, check_after))
        self.summary.count(op, before.count, after.count)
        if self.summary.first is None:
            self.summary.first = before
        self.summary.last = self._last = after
        if after_addr != hit.map_addr:
            self.target.base = after_addr
        ev = DeleteEvent(
            seq=self.summary.events,
            op=op,
            entry=hit.entry,
            via=hit.via,
            goroutine=hit.thread.goroutine_id,
            location=hit.location,
            key=key,
            key_decoded=decoded,
            before=before,
            after=after,
            diff=d,
            warnings=tuple(warnings),
        )
        self.on_event(ev)
        return ev

    def _probe(
        self,
        hit: _Hit,
        dec: Decoder,
        *,
        hasher: KeyHasher | tuple[str, KeyHasher] | str | None,
        data: bytes | None,
        key: KeyValue,
        op: str,
        resume: str,
    ) -> tuple[tuple[MapSnapshot, bool] | None, int | None, MapSnapshot | None]:
        """The probe's snapshot (None: read the whole map), and, when the call was already
        resumed (pipeline: a delete's bytes read raw, the ``resume`` command sent, then
        decoded while the call runs), its request id and the crosscheck's whole snapshot
        taken first."""
        if data is None or not isinstance(hasher, KeyHasher) or self._last is None:
            return None, None, None
        h, base = hasher, self._last
        # capture and probe both hash the key with the map's seed: once is enough
        hash_of: Callable[[int], int] = functools.cache(lambda seed: h(data, seed))
        if self.opts.pipeline and op == "delete" and dec.keys.scalar_dtype() is not None:
            captured = (
                dec.capture(hit.map_addr, hash_of)
                if isinstance(dec, SwissDecoder)
                else dec.capture(hit.map_addr, hash_of, base)
            )
            if captured is not None:
                check = dec.snapshot(hit.map_addr) if self.opts.crosscheck else None
                stepping = self.c.send_command(resume)
                later = dec.over(captured)
                try:
                    return later.probe(hit.map_addr, key, hash_of, base), stepping, check
                except DlvsnapError:
                    self.c.command_reply(stepping)  # let the step end before giving up
                    raise
        probed = dec.probe(hit.map_addr, key, hash_of, base, insert=op == "assign")
        return probed, None, None

    def _after(
        self,
        typ: int,
        dec: Decoder,
        addr: int,
        before: MapSnapshot,
        *,
        found: bool | None,
        op: str,
        key: KeyValue,
    ) -> tuple[MapSnapshot, list[str]]:
        """The snapshot after the call: what ``before`` read, read again; with a warning
        (and whole snapshots from then on) if the count says the probe was wrong."""
        if not before.partial:
            return dec.snapshot(addr), []
        after = dec.reread(addr, before, structural=op == "assign")
        warnings = []
        if op == "assign":
            expect = before.count + (0 if found else 1)
        else:
            expect = before.count - (1 if found else 0)
        # an insert of a new key must have landed in what the probe read
        landed = (
            op != "assign"
            or bool(found)
            or not after.partial
            or any(after.rows.key(int(p)) == key for p in np.flatnonzero(after.full_mask))
        )
        if after.count != expect or not landed:
            where = "" if landed else ", and the new key is not where the probe looked"
            warnings.append(
                f"the probe found the key {'present' if found else 'absent'} but the "
                f"count went {before.count} -> {after.count}{where}: whole snapshots from now on"
            )
            self._hashers[typ] = f"its hash disagreed with the {op} of {key!r}"
        if self.opts.live_keys and after.partial:
            after = dec.snapshot(addr)
        return after, warnings

    # -- hashing ---------------------------------------------------------------------------------
    def _hasher(
        self, typ: int, dec: Decoder, mem: MemoryReader
    ) -> KeyHasher | tuple[str, KeyHasher] | str:
        """The map type's hasher, once known; resolved on first use."""
        if self.opts.full:
            return "--full"
        got = self._hashers.get(typ)
        if got is None:
            got = self._hashers[typ] = self._resolve_hasher(dec.mt, mem)
            if isinstance(got, str):
                self.on_note(
                    Note(
                        "snapshots",
                        f"whole-map snapshots at every delete: {got}",
                        {"reason": got},
                    )
                )
        return got

    def _resolve_hasher(self, mt: MapType, mem: MemoryReader) -> tuple[str, KeyHasher] | str:
        t = self.s.target
        if t.goarch != "amd64":
            return f"dlvsnap hashes keys on amd64 only, not {t.goarch}"
        bias = self.s.load_bias()  # non-zero for a position-independent executable
        syms = {
            n: a + bias
            for n, a in elf_symbols(t.path, [*HASHERS, *AESKEYSCHED, *USE_AESHASH]).items()
        }
        ks = next((syms[n] for n in AESKEYSCHED if n in syms), None)
        use = next((syms[n] for n in USE_AESHASH if n in syms), None)
        if ks is None or use is None:
            return "the binary has no aeskeysched symbol"
        try:
            if mem.read(use, 1) == b"\x00":
                return "the target runs without AES hashing (runtime.useAeshash is false)"
            pc = int.from_bytes(mem.read(mt.hasher, t.ptr_size), self.layout.order)
            name = next((n for n, a in syms.items() if a == pc and n in HASHERS), None)
            if name is None:
                return f"dlvsnap does not hash {mt.key.kind_name} keys this way (hasher at {pc:#x})"
            return ("pending", KeyHasher(name, mem.read(ks, 128)))
        except MemoryReadError as e:
            return f"cannot read the hash function's state: {e}"

    def _check_hasher(self, typ: int, dec: Decoder, h: KeyHasher, snap: MapSnapshot) -> None:
        """Trust the hasher once it places at least 8 (up to 64) live keys of a whole
        snapshot where the runtime put them (h2/tophash: 7-8 bits each, and table or
        bucket). Until a snapshot has 8 keys it can hash, the hasher stays pending."""
        full = np.flatnonzero(snap.full_mask)
        seed = int(snap.header["seed" if snap.impl == "swiss" else "hash0"])
        checked = 0
        for pos in full[:: max(1, len(full) // 64)][:64].tolist():
            data = dec.keys.hash_input(snap.rows.key(pos))
            if data is None:
                continue  # a key dlvsnap cannot hash (a NaN, a cut string): no evidence
            if not dec.placed(snap, pos, h(data, seed)):
                self._hashers[typ] = f"dlvsnap's {h.name} does not place this map's keys"
                self.on_note(Note("snapshots", f"whole-map snapshots: {self._hashers[typ]}"))
                return
            checked += 1
        if checked >= 8:
            self._hashers[typ] = h

    def _after_addr(self, hit: _Hit, mem: MemoryReader) -> int:
        """A stack-resident header moves if the stack grew during the call: follow it."""
        if self.target.mode != "stack" or not hit.g_addr:
            return hit.map_addr
        p = self.layout.ptr_size
        # g.stack is g's first field: stack{lo, hi uintptr} (runtime/runtime2.go).
        hi_now = int.from_bytes(mem.read(hit.g_addr + p, p), self.layout.order)
        return hit.map_addr + (hi_now - hit.stack_hi)

    def _deleted_key(self, hit: _Hit, keys: KeyDecoder, mem: MemoryReader) -> tuple[KeyValue, bool]:
        """The key being deleted (or assigned), from the entry point's key argument (None
        for mapclear)."""
        a = hit.key_arg
        if a is None or hit.entry.endswith("mapclear"):
            return None, False
        try:
            if hit.entry.endswith("_faststr") or a.kind == KIND_STRING:
                key = keys.string_at(a.base, a.len)
            elif hit.entry.endswith(("_fast32", "_fast64", "_fast32ptr", "_fast64ptr")):
                # the key itself (a pointer, for the ptr variants), not a pointer to it
                width = 4 if "_fast32" in hit.entry else 8
                key = keys.from_value(a.as_int().to_bytes(width, self.layout.order))
            elif a.as_int() == 0:  # runtime.mapdelete: an unsafe.Pointer to the key's bytes
                return None, False
            else:
                key = keys.from_value(mem.read(a.as_int(), keys.kt.size))
        except (ValueError, OverflowError, LayoutError, MemoryReadError):
            return None, False
        return key, True


def exit_words(status: int) -> str:
    """How a program ended, from Delve's exit status (minus the signal that killed it)."""
    if status >= 0:
        return f"exited (status {status})"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = "a signal"
    return f"was killed by {name} (signal {-status})"


def _pointer_arg(th: Thread, v: Variable) -> int:
    try:
        return v.as_int()
    except ValueError:
        why = v.unreadable or f"value {v.value!r}"
        raise TargetError(f"{th.function}: cannot read argument {v.name}: {why}") from None


def _int_var(var: dict[str, Variable], name: str) -> int:
    v = var.get(name)
    if v is None or v.unreadable or not v.value:
        return 0
    try:
        return v.as_int()
    except ValueError:
        return 0


def _crosscheck(d: MapDiff, full: MapDiff) -> list[str]:
    """Where the diff of what was read differs from the diff of two whole snapshots."""

    def changes(x: MapDiff) -> set[tuple[object, ...]]:
        return {
            (str(c.loc), c.before_state, c.after_state, c.before_byte, c.after_byte)
            for c in x.changes
        }

    out = []
    if changes(d) != changes(full):
        out.append(f"crosscheck: slot changes {sorted(changes(d))} != {sorted(changes(full))}")
    if (d.count_before, d.count_after) != (full.count_before, full.count_after):
        out.append("crosscheck: counts differ")
    if d.header_changes != full.header_changes:
        out.append(f"crosscheck: header changes {d.header_changes} != {full.header_changes}")
    return out
