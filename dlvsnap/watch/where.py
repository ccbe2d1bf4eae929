"""Where in a hit's stack the map is looked for: the frame that evaluates ``--map``
(the caller's, ``--frame N`` frames out from it, or the frame of ``--in FUNC``) and the
frame that ``--site`` names. Pure matching on the stack's locations, inlined frames
included (Delve lists a call inlined into its caller as a frame of its own, at the same
PC); resolve.py asks Delve.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dlvsnap.model import Location

_TYPE_ARGS = re.compile(r"\[[^\[\]]*\]")
_LINE_SPEC = re.compile(r"^(.+):(\d+)$")


def plain_name(function: str) -> str:
    """A function's name without type arguments: the binary's
    ``pkg.(*LRU[go.shape.int,go.shape.string]).Remove`` and a user's ``pkg.(*LRU[K, V]).Remove``
    are both ``pkg.(*LRU).Remove``."""
    prev = None
    while prev != function:
        prev, function = function, _TYPE_ARGS.sub("", function)
    return function


def names_function(spec: str, function: str) -> bool:
    """Whether ``spec`` names ``function``: the whole name, or its end after a package
    path's ``/`` or a ``.`` (``(*cache).delete``, ``simplelru.(*LRU).removeElement``,
    ``main.main``), type arguments left out on both sides."""
    s, f = plain_name(spec.strip()), plain_name(function)
    return f == s or f.endswith("." + s) or f.endswith("/" + s)


@dataclass(frozen=True)
class Site:
    """``--site``: a delete statement's line (``file`` and ``line`` as Delve resolved
    them) or a function (``function``, the spec as the user typed it)."""

    spec: str
    file: str = ""
    line: int = 0
    function: str = ""

    @classmethod
    def of(cls, spec: str) -> Site:
        """A site as typed: a FILE:LINE (its file and line to be resolved by Delve) or a
        function name."""
        return cls(spec) if cls.is_line(spec) else cls(spec, function=spec)

    @staticmethod
    def is_line(spec: str) -> bool:
        """``FILE:LINE``, or Delve's ``FUNC:LINE`` (a line of a function)."""
        return _LINE_SPEC.match(spec.strip()) is not None

    def matches(self, loc: Location) -> bool:
        if self.function:
            return names_function(self.function, loc.function)
        return loc.line == self.line and loc.file == self.file


@dataclass(frozen=True)
class FrameChoice:
    """Which frame of a hit's stack evaluates EXPR. ``frames`` is the whole stack as
    Delve numbers it (0: the runtime entry point), ``caller`` the first frame outside the
    runtime."""

    in_func: str | None = None
    frame: int | None = None  # --frame N: N frames out from the caller
    site: Site | None = None

    @property
    def needs_stack(self) -> bool:
        """Whether frames beyond the caller's matter (a deeper stack trace per hit)."""
        return bool(self.in_func or self.frame or self.site)

    def site_frame(self, frames: Sequence[Location], caller: int) -> int | None:
        """The first frame from the caller outwards that the site names (None: not this
        delete; always the caller's frame without --site)."""
        if self.site is None:
            return caller
        return next((i for i in range(caller, len(frames)) if self.site.matches(frames[i])), None)

    def eval_frame(self, frames: Sequence[Location], caller: int) -> int | None:
        """The frame that evaluates EXPR at this hit, or None when this hit has none (the
        site is not on its stack, no frame of ``--in``'s function)."""
        at = self.site_frame(frames, caller)
        if at is None:
            return None
        if self.in_func:
            return next(
                (
                    i
                    for i in range(caller, len(frames))
                    if names_function(self.in_func, frames[i].function)
                ),
                None,
            )
        if self.frame:
            return caller + self.frame
        return at
