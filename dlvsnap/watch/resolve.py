"""Which map ``--map EXPR`` names, asked of Delve: before the program runs for an
expression rooted at a package variable, else at each call until it names the map the call
was given (in the caller's frame). The answers go into a WatchedMap (watched.py)."""

from __future__ import annotations

import re

from dlvsnap.delve.client import DelveClient
from dlvsnap.delve.types import LoadConfig, Variable
from dlvsnap.errors import MapResolutionError, RPCError, UsageError
from dlvsnap.kinds import Kind
from dlvsnap.model import Location
from dlvsnap.watch.hits import Hit
from dlvsnap.watch.options import op_of
from dlvsnap.watch.watched import WatchedMap, package_root

# Delve's answer to an expression it cannot parse: "1:3: expected operand, found 'EOF'"
_PARSE_ERROR = re.compile(r"^\d+:\d+: ")


class Resolver:
    def __init__(self, client: DelveClient, expr: str, shown: str, in_func: str | None) -> None:
        self.client = client
        self.expr = expr  # in Delve's syntax (dlvsnap.delve.expr.normalise_expr)
        self.shown = shown  # as the user typed it
        self.in_func = in_func
        self.tried_in: set[str] = set()  # functions where EXPR did not evaluate
        self.not_map = ""  # the type EXPR had where an assign was seen, if not a map
        self.nil_seen: Location | None = None  # where EXPR was a nil map at a call

    def check_in_func(self) -> None:
        f = self.in_func
        if f and not self.client.list_functions(f"^{re.escape(f)}$"):
            raise UsageError(f"--in {f}: the binary has no function of that name")

    def static(self, watched: WatchedMap) -> None:
        """An expression rooted at a package variable (``main.cache``, ``main.srv.byID``,
        ``"example.com/pkg".Var``) is checked before the program runs, and followed as that
        variable. Anything else is resolved at the first delete, in the caller's frame,
        even when it evaluates where the program is stopped now (a local of the frame
        ``--connect`` or ``--attach`` found: its stack slot would not follow the map).
        A syntax error, or a package variable that does not exist, is refused at once."""
        root = package_root(self.expr)
        try:
            v = self.client.eval(self.expr, cfg=LoadConfig())
        except RPCError as e:
            msg = e.message
            if _PARSE_ERROR.match(msg):
                raise UsageError(f"--map {self.shown} is not an expression: {msg}") from None
            if root is None or not self._is_package(root[0]):
                return  # a local: resolved at the first delete, in the caller's frame
            if not self._is_package_var(root[1]):
                raise MapResolutionError(
                    f"unknown variable: {self.shown} ({root[0]} has no package "
                    f"variable {root[1].removeprefix(root[0] + '.')})"
                ) from None
            raise MapResolutionError(f"cannot evaluate {self.shown}: {msg}") from None
        if root is None or not self._is_package_var(root[1]):
            return  # not rooted at a package variable: at the first delete
        self._check_kind(v)
        watched.mode, watched.var_addr = "var", v.addr

    def discover(self, hit: Hit, watched: WatchedMap) -> bool:
        """Whether EXPR, in the caller's frame of this hit, names the map the call was given
        (then ``watched`` says how to recognise it from now on)."""
        fn = hit.location.function
        if self.in_func and fn != self.in_func:
            return False
        try:
            v = self.client.eval(
                self.expr, goroutine=hit.goroutine, frame=hit.caller_frame, cfg=LoadConfig()
            )
        except RPCError:
            self.tried_in.add(fn)
            return False
        if v.kind != Kind.MAP and op_of(hit.entry) == "assign":
            # library code assigns to its own maps from frames where EXPR is something else
            self.not_map = self.not_map or v.type
            return False
        self._check_kind(v)
        if v.base == 0:
            if hit.map_addr == 0:
                self.nil_seen = hit.location
            return False
        if v.base != hit.map_addr:
            return False
        watched.found(hit)
        return True

    def _check_kind(self, v: Variable) -> None:
        if v.kind != Kind.MAP:
            raise MapResolutionError(f"not a map: {self.shown} is {v.type or f'kind {v.kind}'}")

    def _is_package(self, pkg: str) -> bool:
        """Whether the binary has a package of that path (code or variables in it)."""
        rx = f"^{re.escape(pkg)}\\."
        return bool(self.client.list_functions(rx) or self.client.list_package_vars(rx))

    def _is_package_var(self, name: str) -> bool:
        return bool(self.client.list_package_vars(f"^{re.escape(name)}$"))
