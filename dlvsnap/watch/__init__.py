"""The watch engine, split where Delve stops and decoding starts:

* ``options``  what a watch is asked to do (WatchOptions, the operations), notes;
* ``watched``  which map is watched and how its calls are recognised (pure);
* ``resolve``  which map ``--map EXPR`` names, asked of Delve;
* ``stops``    where the program stops and how a watched call ends: the only part that
               speaks Delve; it hands on ``Hit`` and ``CallControl`` (``hits``);
* ``recorder`` one watched call: before, the call's end, after, diff (decoders only);
* ``trust``    whether dlvsnap may hash a map's keys itself (explicit states);
* ``engine``   MapWatch, the loop that ties them together.

The names below are imported on first use, so that importing the Delve-free parts
(``dlvsnap.watch.recorder``...) does not load the engine and the transport with them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlvsnap.watch.engine import MapWatch
    from dlvsnap.watch.options import (
        DEFAULT_OPS,
        MODES,
        OPS,
        Note,
        WatchOptions,
        exit_words,
        op_of,
        ops_regex,
    )

_HOMES = {
    "MapWatch": "engine",
    "DEFAULT_OPS": "options",
    "MODES": "options",
    "OPS": "options",
    "Note": "options",
    "WatchOptions": "options",
    "exit_words": "options",
    "op_of": "options",
    "ops_regex": "options",
}

__all__ = [
    "DEFAULT_OPS",
    "MODES",
    "OPS",
    "MapWatch",
    "Note",
    "WatchOptions",
    "exit_words",
    "op_of",
    "ops_regex",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dlvsnap.watch' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dlvsnap.watch.{home}"), name)
