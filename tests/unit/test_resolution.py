"""Which expressions dlvsnap checks as package variables before the program runs."""

from __future__ import annotations

import pytest

from dlvsnap.watch.watched import package_root as _package_root


@pytest.mark.parametrize(
    ("expr", "root"),
    [
        ("main.cache", ("main", "main.cache")),
        ("main.srv.byID", ("main", "main.srv")),
        ('"example.com/pkg".Var[1]', ("example.com/pkg", "example.com/pkg.Var")),
        ("*main.p", ("main", "main.p")),
        ("c.items", ("c", "c.items")),
        ("m", None),
        ("(*c).items", None),
        ("m[1]", None),
    ],
)
def test_package_root(expr: str, root: tuple[str, str] | None) -> None:
    assert _package_root(expr) == root
