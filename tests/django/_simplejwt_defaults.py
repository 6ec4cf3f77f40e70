"""The installed SimpleJWT's ``DEFAULTS`` (its ``settings.py``), read from its source, as the tests that
need them run without Django set up."""

from __future__ import annotations

import ast
from pathlib import Path


def simplejwt_defaults() -> dict[str, ast.expr]:
    """Each of SimpleJWT's settings, by name, with the expression of its default."""
    import rest_framework_simplejwt

    source = Path(rest_framework_simplejwt.__file__).with_name("settings.py").read_text()
    defaults = next(
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DEFAULTS" for t in node.targets)
    )
    assert isinstance(defaults, ast.Dict)
    return {
        key.value: value
        for key, value in zip(defaults.keys, defaults.values, strict=True)
        if isinstance(key, ast.Constant) and isinstance(key.value, str)
    }
