"""Dependencies point inward: the core never imports the server, a concrete store or a framework."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import keyturn

PACKAGE_DIR = Path(keyturn.__file__).parent

CORE = [
    "__init__",
    "errors",
    "typing",
    "config",
    "clock",
    "keys",
    "tokens",
    "_jws",
    "_reload",
    "http",
    "sessions",
    "revocation",
    "users",
    "events",
]

FORBIDDEN = ("keyturn.server", "keyturn.store", "keyturn.middleware", "keyturn.client")
FORBIDDEN_THIRD_PARTY = ("fastapi", "starlette", "uvicorn", "psycopg", "psycopg2", "redis", "django", "httpx")

# keyturn.testing ships the memory store for users' tests; it may reach that one backend and nothing else.
TESTING_ALLOWED = ("keyturn.store.memory",)


def imported_modules(source: str, module: str) -> set[str]:
    """Every module ``source`` (the code of ``module``) imports, relative imports made absolute."""
    package = module if module.endswith("__init__") else module.rpartition(".")[0]
    package = package.removesuffix(".__init__")
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            found.add(target)
            # ``from . import server`` imports the submodule keyturn.server
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "__import__")
            )
        ):
            found.add(node.args[0].value)
    return found


def violations(imports: set[str], allowed: tuple[str, ...] = ()) -> set[str]:
    def within(name: str, root: str) -> bool:
        return name == root or name.startswith(root + ".")

    bad = set()
    for name in imports:
        if any(within(name, ok) for ok in allowed):
            continue
        if any(within(name, root) for root in FORBIDDEN + FORBIDDEN_THIRD_PARTY):
            bad.add(name)
    return bad


@pytest.mark.parametrize("name", CORE)
def test_core_module_imports_nothing_outward(name: str) -> None:
    """The core must run without a web framework or a store driver (DESIGN: dependencies point inward)."""
    path = PACKAGE_DIR / f"{name}.py"

    imports = imported_modules(path.read_text(), f"keyturn.{name}")

    assert imports, f"{path} imports nothing: is the parser reading the right file?"
    assert violations(imports) == set()


MIDDLEWARE_ALLOWED = ("httpx", "keyturn.middleware", "keyturn.store")
# Each framework integration may import its own framework, and nothing else outward.
MIDDLEWARE_FRAMEWORKS = {
    "asgi": (),
    "fastapi": ("fastapi",),
    "wsgi": (),
    "django": ("django",),
    "drf": ("django", "rest_framework"),
}


@pytest.mark.parametrize(
    "name",
    [
        "__init__",
        "verifier",
        "_sources",
        "_grants",
        "_paths",
        "_bearer",
        "_io_thread",
        "_held_keys",
        *MIDDLEWARE_FRAMEWORKS,
    ],
)
def test_middleware_never_reaches_the_server_or_a_client(name: str) -> None:
    """Resource servers import the middleware without the token service (or another framework) coming too."""
    path = PACKAGE_DIR / "middleware" / f"{name}.py"

    imports = imported_modules(path.read_text(), f"keyturn.middleware.{name}")

    allowed = MIDDLEWARE_ALLOWED + MIDDLEWARE_FRAMEWORKS.get(name, ())
    assert imports
    assert violations(imports, allowed=allowed) == set()


def test_testing_helpers_reach_only_the_memory_store() -> None:
    """``keyturn.testing`` may bring the memory store, but never the server or another backend."""
    path = PACKAGE_DIR / "testing.py"

    imports = imported_modules(path.read_text(), "keyturn.testing")

    assert "keyturn.store.memory" in imports
    assert violations(imports, allowed=TESTING_ALLOWED) == set()


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("from .server import app", "keyturn.server"),
        ("from . import server", "keyturn.server"),
        ("from .store.sqlite import SQLiteStore", "keyturn.store.sqlite"),
        ("import keyturn.server.app", "keyturn.server.app"),
        ("import fastapi", "fastapi"),
        ("from starlette.requests import Request", "starlette.requests"),
        ("import psycopg", "psycopg"),
        ("from redis.asyncio import Redis", "redis.asyncio"),
        ("import importlib\nimportlib.import_module('uvicorn')", "uvicorn"),
        ("def f():\n    import fastapi", "fastapi"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .server import app",
            "keyturn.server",
        ),
    ],
)
def test_the_import_check_catches_outward_imports(source: str, caught: str) -> None:
    """The checker itself must see each kind of forbidden import, or the tests above prove nothing."""
    assert caught in violations(imported_modules(source, "keyturn.sessions"))


def test_the_import_check_allows_inward_and_standard_imports() -> None:
    """Core-to-core and standard library imports are fine."""
    source = "import json\nfrom .errors import TokenInvalid\nfrom .typing import Store\nimport jwt"

    assert violations(imported_modules(source, "keyturn.sessions")) == set()
