"""Which map is watched, and how a stop is recognised as one of its calls: pure data and
arithmetic on addresses (resolution itself asks Delve: resolve.py).

* ``var``: a package variable (or an expression rooted at one), followed as the variable:
  the breakpoint condition reads it at every call (``uintptr(m) == *(*uintptr)(ADDR)``), so
  a map assigned to it later is the one watched (a ``replaced`` note).
* ``heap``: a map object with its header on the heap, which never moves.
* ``stack``: a map object whose header is on a goroutine's stack. The stack moves when it
  grows (copystack), keeping each frame's distance from the stack's top: the condition
  names the goroutine and that distance, and the header's new place is a ``moved`` note.
* ``discover``: not known yet; the expression is evaluated at each call until it names
  the map the call was given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from dlvsnap.watch.hits import Hit
from dlvsnap.watch.options import Note

_ROOT = re.compile(r'^[*&(\s]*(?:"([^"]+)"|([A-Za-z_]\w*))\.([A-Za-z_]\w*)')


def package_root(expr: str) -> tuple[str, str] | None:
    """The package and package variable an expression starts with if its first name is a
    package's: ``main.srv.byID`` -> ("main", "main.srv"), ``"example.com/p".V[1]`` ->
    ("example.com/p", "example.com/p.V"). ``c.items`` gives ("c", "c.items"): whether
    ``c`` is a package or a local is for the binary to say. None for ``m``, ``(*c).x``."""
    m = _ROOT.match(expr)
    if not m:
        return None
    pkg = m.group(1) or m.group(2)
    return pkg, f"{pkg}.{m.group(3)}"


@dataclass
class WatchedMap:
    mode: str = "discover"  # "discover" | "var" | "heap" | "stack"
    var_addr: int = 0  # var: the variable's address
    header: int = 0  # the header's address when last seen (0: not yet)
    goroutine: int = 0  # stack: the goroutine whose stack holds the header
    stack_offset: int = 0  # stack: stack.hi - header, which stack copying keeps

    @property
    def known(self) -> bool:
        return self.mode != "discover"

    @property
    def on_stack_maybe(self) -> bool:
        """Whether a hit must carry its goroutine's stack bounds (discovery, or a header on
        a stack)."""
        return self.mode in ("discover", "stack")

    def condition(self, map_param: str) -> str:
        """The breakpoint condition that matches this map's calls only (Delve's expression
        syntax; ``map_param`` is the entry points' map parameter: ``m`` or ``h``)."""
        if self.mode == "var":
            return f"uintptr({map_param}) == *(*uintptr)({self.var_addr:#x})"
        if self.mode == "heap":
            return f"uintptr({map_param}) == {self.header:#x}"
        if self.mode == "stack":
            return (
                f"runtime.curg.goid == {self.goroutine} && "
                f"runtime.curg.stack.hi - uintptr({map_param}) == {self.stack_offset}"
            )
        return ""

    def matches(self, hit: Hit, variable_now: Callable[[], int]) -> bool:
        """Whether a breakpoint's hit is a call on this (known) map, when the condition that
        stopped the program names several maps: the variable's map (read now), the header,
        or the header at its distance from its goroutine's stack top."""
        if self.mode == "var":
            return hit.map_addr != 0 and hit.map_addr == variable_now()
        if self.mode == "heap":
            return hit.map_addr == self.header
        if self.mode == "stack":
            return (
                hit.goroutine == self.goroutine and hit.stack_hi - hit.map_addr == self.stack_offset
            )
        return False

    def found(self, hit: Hit) -> None:
        """Discovery's answer: the map this hit was given is the one watched."""
        if hit.stack_lo <= hit.map_addr < hit.stack_hi:
            self.mode, self.goroutine = "stack", hit.goroutine
            self.stack_offset = hit.stack_hi - hit.map_addr
        else:
            self.mode = "heap"
        self.header = hit.map_addr

    def follow(self, hit: Hit, expr: str) -> Note | None:
        """A hit the condition matched: where the header is now, and a note when that is not
        where it was (var: the variable names another map; stack: the stack moved)."""
        note = None
        if self.mode in ("var", "stack") and self.header and hit.map_addr != self.header:
            kind, what = (
                ("replaced", f"{expr} now names another map")
                if self.mode == "var"
                else ("moved", "the map's header moved with its goroutine's stack")
            )
            follow = "; following the variable" if self.mode == "var" else ""
            note = Note(
                kind,
                f"{what}: header {self.header:#x} -> {hit.map_addr:#x}{follow}",
                {"old": self.header, "new": hit.map_addr},
            )
        if self.mode in ("var", "stack"):
            self.header = hit.map_addr
        return note

    def header_after(self, hit: Hit, read_word: Callable[[int], int], ptr_size: int) -> int:
        """The header's address once the call returned: it moved by as much as its
        goroutine's stack did, if the stack grew during the call (stack mode)."""
        if self.mode != "stack" or not hit.g_addr:
            return hit.map_addr
        hi_now = read_word(hit.g_addr + ptr_size)  # g.stack{lo, hi} is g's first field
        return hit.map_addr + (hi_now - hit.stack_hi)
