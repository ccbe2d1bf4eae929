"""dlvsnap: see what a Go map does in memory when you delete from it.

The Python API (see README "Python API"): ``launch``, ``attach``, ``connect``, ``core``
give a Debugger; ``Debugger.map(expr).snapshot()``, ``Debugger.watch(m)``,
``Debugger.maps()`` (a census); ``load`` reads a saved snapshot; ``compare`` diffs two
snapshots. They are imported on first use, so that light modules (``dlvsnap.toolchain``,
used by scripts/toolchains with a bare Python) stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Debugger",
    "MapHandle",
    "Watch",
    "__version__",
    "attach",
    "compare",
    "connect",
    "core",
    "launch",
    "load",
]

if TYPE_CHECKING:
    from dlvsnap.api import (
        Debugger,
        MapHandle,
        Watch,
        attach,
        compare,
        connect,
        core,
        launch,
        load,
    )


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dlvsnap import api  # noqa: PLC0415 (lazy: see the module docstring)

        return getattr(api, name)
    raise AttributeError(f"module 'dlvsnap' has no attribute {name!r}")
