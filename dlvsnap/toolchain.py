"""Where the pinned Delve lives. scripts/setup reads DLV_VERSION from this file."""

from __future__ import annotations

import os
from pathlib import Path

DLV_VERSION = "v1.27.2"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dlvsnap"


def default_dlv() -> str:
    """$DLVSNAP_DLV, else the pinned Delve that scripts/setup installed."""
    env = os.environ.get("DLVSNAP_DLV")
    if env:
        return env
    return str(cache_dir() / f"dlv-{DLV_VERSION}" / "bin" / "dlv")
