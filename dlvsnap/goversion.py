"""Go version strings, parsed in one place.

They come from a binary's build info (``go1.25.5 X:noswissmap`` up to Go 1.26,
``go1.27.3-X:mapsplitgroup`` from 1.27: the linker appends the GOEXPERIMENTs that are not
the default), from the test matrix (``1.22.10``, ``1.26``), from layouts/index.toml
(``1.26``) and from a saved snapshot file (untrusted). A *release* is (major, minor): what
layouts, Delve's accepted range and the matrix are keyed by. Standard library only:
scripts/toolchains imports it (through dlvsnap.toolchain) with a bare Python.
"""

from __future__ import annotations

import re

Release = tuple[int, int]

_RELEASE = re.compile(r"(go)?(\d{1,6})\.(\d{1,6})(?!\d)")
_VERSION = re.compile(r"^(go[\d.]+(?:rc\d+|beta\d+)?)(?:[ -]X:(\S+))?")


def release_of(version: str, *, require_go: bool = False) -> Release:
    """(1, 26) of ``go1.26.8 X:foo``, ``go1.27rc1``, ``1.26``; ``require_go``: only of a
    version as Go writes it (``go1.N…``). A ValueError names what is not a Go release."""
    m = _RELEASE.match(version.strip())
    if m is None or (require_go and not m[1]):
        shown = repr(version[:40]) + ("…" if len(version) > 40 else "")
        raise ValueError(f"{shown} is not a Go release (go1.N…)")
    return int(m[2]), int(m[3])


def release_text(release: Release) -> str:
    """``1.26``: as layouts/index.toml and the messages write a release."""
    return f"{release[0]}.{release[1]}"


def split_version(version: str) -> tuple[str, tuple[str, ...]]:
    """``go1.25.5 X:noswissmap`` (<= 1.26) or ``go1.27.3-X:mapsplitgroup`` (1.27) ->
    (``go1.25.5``, (``noswissmap``,)): a binary's Go version and its GOEXPERIMENTs."""
    m = _VERSION.match(version)
    if not m:
        return version.split(maxsplit=1)[0], ()
    return m.group(1), tuple(x for x in (m.group(2) or "").split(",") if x)
