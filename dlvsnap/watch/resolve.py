"""Which map ``--map EXPR`` (or ``--site``) names, asked of Delve: before the program runs
for an expression rooted at a package variable, else at each call until it names the map
the call was given, in the frame where.py chooses. The answers go into a WatchedMap
(watched.py)."""

from __future__ import annotations

import re

from dlvsnap.delve.client import DelveClient
from dlvsnap.delve.types import Frame, LoadConfig, Variable
from dlvsnap.errors import MapResolutionError, RPCError, UsageError
from dlvsnap.kinds import Kind
from dlvsnap.model import Location
from dlvsnap.watch.hits import Hit
from dlvsnap.watch.options import op_of
from dlvsnap.watch.watched import WatchedMap, package_root
from dlvsnap.watch.where import FrameChoice, Site, plain_name

# Delve's answer to an expression it cannot parse: "1:3: expected operand, found 'EOF'"
_PARSE_ERROR = re.compile(r"^\d+:\d+: ")
# The identifier an expression starts with (``s`` of ``(*s).byID``, ``c`` of ``c.items[k]``)
_ROOT_NAME = re.compile(r"^[*&(\s]*([A-Za-z_]\w*)")
# Delve's answers for a name with no variable at that point: never declared there, or
# dropped by the compiler (it leaves no trace of an optimised-away local in the DWARF)
_NO_SYMBOL = ("could not find symbol",)
REBUILD = "-gcflags=all='-N -l'"


class Resolver:
    def __init__(
        self, client: DelveClient, expr: str, shown: str, choice: FrameChoice, optimised: bool
    ) -> None:
        self.client = client
        self.expr = expr  # in Delve's syntax (dlvsnap.delve.expr.normalise_expr); "": --site
        self.shown = shown  # as the user typed it
        self.choice = choice
        self.optimised = optimised  # the binary was built with optimisations
        # where EXPR did not evaluate: function -> Delve's reason (the first one seen)
        self.failed: dict[str, str] = {}
        self.not_map = ""  # the type EXPR had where an assign was seen, if not a map
        self.nil_seen: Location | None = None  # where EXPR was a nil map at a call
        self.site_seen = False  # a delete at --site was seen
        self.missing = False  # EXPR's first name was missing, or its value unreadable

    # -- before the program runs ------------------------------------------------------------
    def check_places(self) -> None:
        """``--in FUNC`` and ``--site`` must name something the binary has (exit 2): Delve
        resolves them as it resolves a breakpoint's location (partial names, inlined
        functions, and a FILE:LINE that is ambiguous or has no statement, in its words).
        A FILE:LINE site is matched on the file and line Delve resolved it to."""
        c = self.choice
        if c.in_func:
            self._locate("--in", c.in_func)
        if c.site is not None:
            loc = self._locate("--site", c.site.spec)
            if Site.is_line(c.site.spec):
                self.choice = FrameChoice(
                    c.in_func, c.frame, Site(c.site.spec, file=loc.file, line=loc.line)
                )

    def _locate(self, option: str, spec: str) -> Frame:
        try:  # Delve takes no type arguments in a function's name
            locs = self.client.find_locations(plain_name(spec))
        except RPCError as e:
            what = "function" if option == "--in" else "function or line"
            why = (
                f"the binary has no {what} of that name ({e.message})"
                if e.message.endswith("not found")
                else e.message
            )
            raise UsageError(f"{option} {spec}: {why}") from None
        if not locs:
            raise UsageError(f"{option} {spec}: Delve finds no such location")
        return locs[0]

    def static(self, watched: WatchedMap) -> None:
        """An expression rooted at a package variable (``main.cache``, ``main.srv.byID``,
        ``"example.com/pkg".Var``) is checked before the program runs, and followed as that
        variable. Anything else is resolved at the first delete, in the caller's frame,
        even when it evaluates where the program is stopped now (a local of the frame
        ``--connect`` or ``--attach`` found: its stack slot would not follow the map).
        A syntax error, or a package variable that does not exist, is refused at once.
        With ``--site`` the map is found at the site's first delete (EXPR, if given, is
        checked there)."""
        if not self.expr:
            return
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
        if root is None or not self._is_package_var(root[1]) or self.choice.site is not None:
            return  # not rooted at a package variable (or checked at the site)
        self._check_kind(v)
        watched.mode, watched.var_addr = "var", v.addr

    # -- at each call, until the map is known -----------------------------------------------
    def discover(self, hit: Hit, watched: WatchedMap) -> bool:
        """Whether this hit is a call on the watched map: EXPR, in the frame where.py
        chooses, names the map the call was given, or (``--site``) the call is made at
        the site. Then ``watched`` says how to recognise the map from now on."""
        at = self._frame(hit)
        if at is None:
            return False
        addr = self._named(hit, at) if self.expr else hit.map_addr
        if addr is None:
            return False
        if addr == 0:
            if hit.map_addr == 0:
                self.nil_seen = hit.location
            return False
        if addr != hit.map_addr:
            site = self.choice.site
            if site is not None:
                raise MapResolutionError(
                    f"--map {self.shown} and --site {site.spec} name different maps: "
                    f"{self.shown} is the map at {addr:#x} in {self._function(hit, at)}, "
                    f"the delete at the site deletes from the map at {hit.map_addr:#x}"
                )
            return False
        watched.found(hit)
        return True

    def _frame(self, hit: Hit) -> int | None:
        """The frame of this hit that evaluates EXPR (None: not a call to look at)."""
        c, frames, caller = self.choice, hit.frames, hit.caller_frame
        if c.site is not None:
            if c.site_frame(frames, caller) is None:
                return None
            self.site_seen = True
        return c.eval_frame(frames, caller)

    @staticmethod
    def _function(hit: Hit, at: int) -> str:
        return hit.frames[at].function if at < len(hit.frames) else hit.location.function

    def _named(self, hit: Hit, at: int) -> int | None:
        """The map EXPR names in frame ``at`` of this hit (its address, 0 for a nil map),
        None when it names none there (the reason is kept for the end; at the site, where
        it must, an error at once)."""
        fn = self._function(hit, at)
        try:
            v = self.client.eval(self.expr, goroutine=hit.goroutine, frame=at, cfg=LoadConfig())
        except RPCError as e:
            if fn not in self.failed or self.choice.site is not None:
                # its reason, once per function: _why_not may cost another evaluation
                self._failed(fn, self._why_not(e.message, hit.goroutine, at))
            return None
        if v.unreadable:
            self.missing = True
            self._failed(fn, f"{self.shown} is unreadable: {v.unreadable}")
            return None
        if v.kind != Kind.MAP and op_of(hit.entry) == "assign" and self.choice.site is None:
            # library code assigns to its own maps from frames where EXPR is something else
            self.not_map = self.not_map or v.type
            return None
        self._check_kind(v)
        return v.base

    def _failed(self, fn: str, reason: str) -> None:
        if self.choice.site is not None:  # the site's own delete: EXPR must evaluate there
            raise MapResolutionError(
                f"{self.shown} does not evaluate in {fn}: {reason}{self._hint()}"
            )
        self.failed.setdefault(fn, reason)

    def _why_not(self, message: str, goroutine: int, frame: int) -> str:
        """Delve's reason EXPR did not evaluate, and whether its first name is missing
        there: Delve says "could not find symbol s.byID" for a whole selector whose root
        is not in scope; the root alone says whether that is the reason."""
        m = _ROOT_NAME.match(self.expr)
        root = m.group(1) if m else ""
        if not message.startswith(_NO_SYMBOL) or not root:
            return message
        if root != self.expr:
            try:
                self.client.eval(root, goroutine=goroutine, frame=frame, cfg=_NO_LOAD)
            except RPCError:
                pass
            else:
                return message  # the root is there: Delve's reason stands
        self.missing = True
        return f"no variable {root}"

    def _hint(self) -> str:
        """What to do when a name was missing or unreadable in an optimised binary."""
        if not (self.optimised and self.missing):
            return ""
        return (
            f". The binary is optimised: locals and parameters of optimised and inlined "
            f"code are often gone; choose the map with --site FILE:LINE of its delete, or "
            f"build with {REBUILD}"
        )

    def failure(self, known: bool) -> str | None:
        """Why no call on the watched map was seen, once the program is over (None: no
        reason known; the program deleted from no map where it was looked for)."""
        shown, c = self.shown, self.choice
        if self.nil_seen is not None:
            return (
                f"nil map: {shown} was nil when the program deleted from it "
                f"({self.nil_seen}); delete on a nil map does nothing"
            )
        why = None
        if known:
            pass
        elif self.not_map:
            why = f"not a map: {shown} is {self.not_map}"
        elif self.failed:
            why = (
                f"unknown variable: {shown} did not evaluate where the program deleted "
                f"from a map: {_by_reason(self.failed)}{self._hint()}"
            )
        elif c.site is not None and not self.site_seen:
            why = f"the program never deleted at --site {c.site.spec}"
        elif c.in_func:
            why = f"the program never deleted from a map with {c.in_func} on the stack"
        return why

    def _check_kind(self, v: Variable) -> None:
        if v.kind != Kind.MAP:
            raise MapResolutionError(f"not a map: {self.shown} is {v.type or f'kind {v.kind}'}")

    def _is_package(self, pkg: str) -> bool:
        """Whether the binary has a package of that path (code or variables in it)."""
        rx = f"^{re.escape(pkg)}\\."
        return bool(self.client.list_functions(rx) or self.client.list_package_vars(rx))

    def _is_package_var(self, name: str) -> bool:
        return bool(self.client.list_package_vars(f"^{re.escape(name)}$"))


_NO_LOAD = LoadConfig(max_string_len=0, max_struct_fields=0)
_SHOWN_FUNCS = 3  # functions named per reason


def _by_reason(failed: dict[str, str]) -> str:
    """``no variable s in main.a, main.b and 4 more; c has no member itms in main.c``: the
    main package's functions first (the user's own code, most likely where EXPR is)."""
    funcs: dict[str, list[str]] = {}
    for fn, why in sorted(failed.items(), key=lambda x: (not x[0].startswith("main."), x)):
        funcs.setdefault(why, []).append(fn)
    parts = []
    for why, fns in funcs.items():
        more = f" and {len(fns) - _SHOWN_FUNCS} more" if len(fns) > _SHOWN_FUNCS else ""
        parts.append(f"{why} in {', '.join(fns[:_SHOWN_FUNCS])}{more}")
    return "; ".join(parts)
