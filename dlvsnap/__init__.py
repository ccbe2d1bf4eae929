"""dlvsnap: see what a Go map does in memory when you delete from it.

The Python API (see README "Python API"): ``launch``, ``attach``, ``connect`` give a
Debugger; ``Debugger.map(expr).snapshot()``, ``Debugger.watch(m)``; ``load`` reads a saved
snapshot; ``diff`` compares two snapshots.
"""

__version__ = "0.1.0"

from dlvsnap.api import Debugger, MapHandle, attach, connect, diff, launch, load

__all__ = ["Debugger", "MapHandle", "__version__", "attach", "connect", "diff", "launch", "load"]
