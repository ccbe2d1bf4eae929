"""Delve's expression syntax, where it differs from Go's."""

from __future__ import annotations

import re


def normalise_expr(expr: str) -> str:
    """``example.com/pkg.Var`` -> ``"example.com/pkg".Var``: Delve names a package variable
    by the package's path in quotes when the path has a slash."""
    if "/" in expr and not expr.startswith('"'):
        pkg, _, rest = expr.rpartition(".")
        if pkg and "/" in pkg and re.fullmatch(r"[\w.\-/]+", pkg):
            return f'"{pkg}".{rest}'
    return expr
