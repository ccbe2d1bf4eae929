"""A typed client for the Delve methods dlvsnap uses (one method per RPC, typed results).

The client knows Delve, not maps: it never interprets what it reads.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from dlvsnap.delve.rpc import JsonRpcConnection
from dlvsnap.delve.types import (
    JSON,
    Breakpoint,
    DebuggerState,
    DumpState,
    Frame,
    Goroutine,
    LoadConfig,
    Variable,
    Version,
)
from dlvsnap.errors import CoreCannotRunError, RPCError

# requests in flight at once when many calls are pipelined (DelveClient._calls)
PIPELINE = 16
CURRENT_GOROUTINE = -1  # EvalScope.GoroutineID: the selected goroutine (0 is a bug)

# What Delve answers State (and most requests) with once the program has exited.
_EXITED = re.compile(r"\bProcess \d+ has exited with status (-?\d+)")

# api.WatchType: 1 read, 2 write (CreateWatchpoint)
_WATCH_WRITE = 2

# What Delve answers on a core file to a request that would run the program (or write to it).
_CORE_REFUSALS = (
    "can not continue execution of core process",
    "cannot write a breakpoint to a core file",
)

# ExamineMemory's limit per call: 65,536 bytes on current Delve (1,000 on Delve 1.20).
EXAMINE_MEMORY_LIMIT = 1 << 16


@dataclass(frozen=True)
class BreakpointSpec:
    """What to create. Exactly one of ``function_name`` or ``addrs`` locates it."""

    function_name: str = ""
    addrs: tuple[int, ...] = ()
    cond: str = ""
    name: str = ""
    stacktrace: int = 0
    variables: tuple[str, ...] = ()
    load_args: LoadConfig | None = None

    def to_json(self) -> JSON:
        bp: JSON = {}
        if self.function_name:
            bp["functionName"] = self.function_name
            bp["line"] = 0
        if self.addrs:
            bp["addrs"] = list(self.addrs)
            bp["addr"] = self.addrs[0]
        if self.cond:
            bp["Cond"] = self.cond  # "Cond", exactly: a misspelt key is silently dropped
        if self.name:
            bp["name"] = self.name
        if self.stacktrace:
            bp["stacktrace"] = self.stacktrace
        if self.variables:
            bp["variables"] = list(self.variables)
        if self.load_args is not None:
            bp["LoadArgs"] = self.load_args.to_json()
        return bp


def exited_with(e: RPCError) -> int | None:
    """The exit status in Delve's answer for a program that has exited (State and most
    requests: ``Process 123 has exited with status 0``); None for any other error."""
    m = _EXITED.search(e.message)
    return int(m.group(1)) if m else None


def _scope(goroutine: int, frame: int) -> JSON:
    return {"GoroutineID": goroutine, "Frame": frame, "DeferredCall": 0}


# Commands that never set the program running.
_NOT_RESUMING = frozenset({"halt", "switchGoroutine", "switchThread"})


class DelveClient:
    def __init__(self, conn: JsonRpcConnection, default_timeout: float = 60.0) -> None:
        self.conn = conn
        self.timeout = default_timeout
        self.examine_limit = EXAMINE_MEMORY_LIMIT
        # whether this client ever resumed the program (continue, stepOut...): one it never
        # resumed runs, if it runs, because another client of the server resumed it
        self.resumed = False

    def _call(self, method: str, params: JSON | None = None, timeout: float | None = -1.0) -> JSON:
        try:
            return self.conn.call(
                method, params or {}, self.timeout if timeout == -1.0 else timeout
            )
        except RPCError as e:
            if any(r in e.message for r in _CORE_REFUSALS):
                raise CoreCannotRunError(
                    f"the program is a core file, which cannot run ({method}: {e.message})"
                ) from None
            raise

    # -- session ---------------------------------------------------------------------------
    def set_api_version(self, version: int = 2) -> None:
        self._call("SetApiVersion", {"APIVersion": version})

    def get_version(self) -> Version:
        return Version.from_json(self._call("GetVersion"))

    def state(self, non_blocking: bool = True) -> DebuggerState:
        return DebuggerState.from_json(self._call("State", {"NonBlocking": non_blocking})["State"])

    def exit_status(self) -> int | None:
        """The program's exit status once it has exited, else None (see exited_with)."""
        try:
            st = self.state(non_blocking=True)
        except RPCError as e:
            if (status := exited_with(e)) is None:
                raise
            return status
        return st.exit_status if st.exited else None

    def _find(self, loc: str, goroutine: int) -> list[JSON]:
        out = self._call(
            "FindLocation",
            {"Scope": _scope(goroutine, 0), "Loc": loc, "IncludeNonExecutableLines": False},
        )
        return list(out.get("Locations") or [])

    def find_location(self, loc: str, goroutine: int = CURRENT_GOROUTINE) -> list[int]:
        """The PCs of a location spec (``file:line``, ``func``, ``func:line``...)."""
        pcs: list[int] = []
        for location in self._find(loc, goroutine):
            pcs += [int(pc) for pc in location.get("pcs") or [location.get("pc", 0)] if pc]
        return pcs

    def find_locations(self, loc: str, goroutine: int = CURRENT_GOROUTINE) -> list[Frame]:
        """Where a location spec resolves to: file, line, and the function whose code
        holds it (for inlined code, the function it is inlined into)."""
        return [Frame.from_json(location) for location in self._find(loc, goroutine)]

    def is_multiclient(self) -> bool:
        return bool(self._call("IsMulticlient").get("IsMulticlient"))

    def process_pid(self) -> int:
        return int(self._call("ProcessPid").get("Pid", 0))

    def detach(self, kill: bool) -> None:
        self._call("Detach", {"Kill": kill}, timeout=10.0)

    # -- execution ---------------------------------------------------------------------------
    def command(self, name: str, timeout: float | None = None, **extra: Any) -> DebuggerState:
        """Run a DebuggerCommand (``continue``, ``stepOut``, ``halt``...); blocks until stop."""
        params: JSON = {"name": name, **extra}
        self.resumed |= name not in _NOT_RESUMING
        return DebuggerState.from_json(self._call("Command", params, timeout=timeout)["State"])

    def send_command(self, name: str) -> int:
        """Send a command without waiting (used for ``halt`` while a continue is pending)."""
        self.resumed |= name not in _NOT_RESUMING
        return self.conn.send("Command", {"name": name})

    def command_reply(self, req_id: int, timeout: float | None = None) -> DebuggerState:
        """The state a command sent with ``send_command`` ends in (blocks until then)."""
        return DebuggerState.from_json(self.conn.wait(req_id, "Command", timeout)["State"])

    def cancel_next(self) -> None:
        self._call("CancelNext")

    # -- breakpoints ---------------------------------------------------------------------------
    def create_breakpoint(self, spec: BreakpointSpec) -> Breakpoint:
        out = self._call("CreateBreakpoint", {"Breakpoint": spec.to_json()})
        return Breakpoint.from_json(out["Breakpoint"])

    def create_watchpoint(self, expr: str, goroutine: int = CURRENT_GOROUTINE) -> Breakpoint:
        """A hardware write watchpoint on the memory ``expr`` names (``*(*uint8)(0x…)``: its
        type gives the size watched). Delve answers with the breakpoint itself."""
        out = self._call(
            "CreateWatchpoint", {"Scope": _scope(goroutine, 0), "Expr": expr, "Type": _WATCH_WRITE}
        )
        return Breakpoint.from_json(out.get("Breakpoint", out))

    def clear_breakpoint(self, bp_id: int) -> None:
        self._call("ClearBreakpoint", {"Id": bp_id})

    def amend_breakpoint(
        self,
        bp: Breakpoint,
        cond: str,
        variables: tuple[str, ...] | None = None,
        stacktrace: int | None = None,
        *,
        load_args: bool = True,
    ) -> Breakpoint:
        """A new condition (and, if given, the variables to evaluate and the stack depth to
        return at each hit; ``load_args=False``: no arguments any more). AmendBreakpoint
        replaces every mutable field: send the whole object back."""
        raw = dict(bp.raw)
        raw["Cond"] = cond
        if variables is not None:
            raw["variables"] = list(variables)
        if stacktrace is not None:
            raw["stacktrace"] = stacktrace
        if not load_args:
            raw["LoadArgs"] = None
        self._call("AmendBreakpoint", {"Breakpoint": raw})
        return Breakpoint.from_json(raw)

    def list_breakpoints(self) -> list[Breakpoint]:
        out = self._call("ListBreakpoints", {"All": False})
        return [Breakpoint.from_json(b) for b in out.get("Breakpoints") or ()]

    # -- symbols -------------------------------------------------------------------------------
    def list_functions(self, regex: str) -> list[str]:
        return list(self._call("ListFunctions", {"Filter": regex}).get("Funcs") or ())

    def list_package_vars(self, regex: str) -> list[str]:
        """The names of the package variables matching ``regex`` (their values unloaded)."""
        cfg = LoadConfig(max_string_len=0, max_struct_fields=0)
        out = self._call("ListPackageVars", {"Filter": regex, "Cfg": cfg.to_json()})
        return [str(v.get("name", "")) for v in out.get("Variables") or ()]

    # -- data ----------------------------------------------------------------------------------
    def eval(
        self,
        expr: str,
        goroutine: int = CURRENT_GOROUTINE,
        frame: int = 0,
        cfg: LoadConfig | None = None,
        timeout: float | None = -1.0,
    ) -> Variable:
        params: JSON = {
            "Scope": _scope(goroutine, frame),
            "Expr": expr,
            "Cfg": (cfg or LoadConfig()).to_json(),
        }
        return Variable.from_json(self._call("Eval", params, timeout=timeout)["Variable"])

    def stacktrace(self, goroutine: int = CURRENT_GOROUTINE, depth: int = 20) -> list[Frame]:
        out = self._call("Stacktrace", {"Id": goroutine, "Depth": depth, "Full": False})
        return [Frame.from_json(f) for f in out.get("Locations") or ()]

    def _calls(self, method: str, params: list[JSON], window: int = PIPELINE) -> list[JSON]:
        """One call per item of ``params``, pipelined: up to ``window`` requests in flight
        (Delve answers its synchronous calls in order, one after the other; the next
        request is waiting when it is done, and no round trip is spent in between). A
        window, not everything at once: Delve stops reading requests while it cannot
        write an answer we have not read yet."""
        out: list[JSON] = []
        sent: list[int] = []
        for p in params:
            sent.append(self.conn.send(method, p))
            if len(sent) - len(out) >= window:
                out.append(self.conn.wait(sent[len(out)], method, self.timeout))
        while len(out) < len(sent):
            out.append(self.conn.wait(sent[len(out)], method, self.timeout))
        return out

    def goroutines(self, page: int = 1000) -> list[Goroutine]:
        """Every goroutine (ListGoroutines, page by page)."""
        out: list[Goroutine] = []
        start = 0
        while True:
            got = self._call("ListGoroutines", {"Start": start, "Count": page})
            out += [Goroutine.from_json(g) for g in got.get("Goroutines") or ()]
            start = int(got.get("Nextg", -1))
            if start <= 0:
                return out

    def stacktraces(self, goroutines: list[int], depth: int) -> list[list[Frame]]:
        """The frames of each goroutine (Stacktrace, pipelined)."""
        params: list[JSON] = [{"Id": g, "Depth": depth, "Full": False} for g in goroutines]
        return [
            [Frame.from_json(f) for f in got.get("Locations") or ()]
            for got in self._calls("Stacktrace", params)
        ]

    def frame_vars(self, scopes: list[tuple[int, int]]) -> list[list[Variable]]:
        """The arguments and locals of each (goroutine, frame), each loaded no deeper than
        its own address, type and (maps) header (ListFunctionArgs and ListLocalVars,
        pipelined)."""
        cfg = LoadConfig(max_string_len=0, max_struct_fields=0).to_json()
        params: list[JSON] = [{"Scope": _scope(g, f), "Cfg": cfg} for g, f in scopes]
        args = self._calls("ListFunctionArgs", params)
        local = self._calls("ListLocalVars", params)
        return [
            [Variable.from_json(v, children=False) for v in (a.get("Args") or ())]
            + [Variable.from_json(v, children=False) for v in (lv.get("Variables") or ())]
            for a, lv in zip(args, local, strict=True)
        ]

    def examine_memory(self, address: int, length: int) -> bytes:
        """One ExamineMemory call; ``length`` must not exceed the server's limit."""
        out = self._call("ExamineMemory", {"Address": address, "Length": length})
        return base64.b64decode(out.get("Mem") or "")

    def read_memory(self, address: int, length: int) -> bytes:
        """Read any length, chunked to the server's ExamineMemory limit."""
        parts: list[bytes] = []
        off = 0
        while off < length:
            n = min(self.examine_limit, length - off)
            try:
                chunk = self.examine_memory(address + off, n)
            except RPCError as e:
                # Delve 1.20 refuses more than 1,000 bytes a call; learn the limit once.
                if "less than or equal to" in e.message and self.examine_limit > 1000:
                    self.examine_limit = 1000
                    continue
                raise
            parts.append(chunk)
            off += n
        return b"".join(parts)

    # -- core dumps ------------------------------------------------------------------------
    def dump_start(self, destination: str) -> DumpState:
        """Start writing a core of the (stopped) program to ``destination``, a path on the
        server's machine. Delve holds the target until the dump ends: poll with
        ``dump_wait``, which does not wait for it."""
        return DumpState.from_json(self._call("DumpStart", {"Destination": destination})["State"])

    def dump_wait(self, wait_ms: int) -> DumpState:
        """The dump's state once it ends or ``wait_ms`` milliseconds have passed (0: now)."""
        out = self._call("DumpWait", {"Wait": wait_ms}, timeout=self.timeout + wait_ms / 1000)
        return DumpState.from_json(out["State"])

    def dump_cancel(self) -> None:
        """Ask the dump in progress to stop (between two 1 MiB chunks); ``dump_wait`` says
        when it has."""
        self._call("DumpCancel")
