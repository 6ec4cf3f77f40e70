"""Dependencies point inward: the core never imports the server, a concrete store or a framework.

The modules checked are read from the package tree, so a new module is covered the day it is added; a module
in a part of the tree no rule speaks for fails the suite until one does.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import keyturn

PACKAGE_DIR = Path(keyturn.__file__).parent

PARTS = (
    "keyturn.server",
    "keyturn.store",
    "keyturn.middleware",
    "keyturn.client",
    "keyturn.django",
    "keyturn.fastapi",
)
FRAMEWORKS_AND_DRIVERS = (
    "fastapi",
    "starlette",
    "uvicorn",
    "psycopg",
    "psycopg2",
    "psycopg_pool",
    "redis",
    "django",
    "rest_framework",
    "httpx",
    "requests",
    "flask",
)


@dataclass(frozen=True)
class Rule:
    """What the modules of one part of the tree may import beyond the standard library and the core."""

    allowed: tuple[str, ...] = ()
    """Parts of keyturn and third-party roots allowed although listed in PARTS or FRAMEWORKS_AND_DRIVERS."""


# Each middleware adapter may import its own framework and nothing else outward.
MIDDLEWARE = ("keyturn.middleware", "keyturn.store", "httpx")
ADAPTERS = {
    "keyturn.middleware.fastapi": ("fastapi", "starlette"),
    "keyturn.middleware.django": ("django",),
    "keyturn.middleware.drf": ("django", "rest_framework"),
}


DJANGO_SHARES_OF_THE_SERVER = (
    "keyturn.server.runtime",
    "keyturn.server.schemas",
    "keyturn.server.proxies",
    "keyturn.server.background",
    "keyturn.server.token_reply",  # the login, refresh and logout answers, the refresh cookie
    "keyturn.server.presentation",  # an access token as Bearer or DPoP (RFC 9449 section 7)
    "keyturn.server.bodies",  # JSON bodies of a declared shape; malformed(): their errors as invalid_request
)


def rule_for(module: str) -> Rule:
    """The rule for ``module``; a module no rule speaks for raises, so the tree cannot outgrow the test."""

    def within(root: str) -> bool:
        return module == root or module.startswith(root + ".")

    if module == "keyturn.testing":
        # Ships the memory store for users' tests; that one backend and nothing else.
        return Rule(allowed=("keyturn.store.memory",))
    if within("keyturn.store"):
        return Rule(allowed=("keyturn.store", "psycopg", "psycopg_pool", "redis"))
    if within("keyturn.middleware"):
        return Rule(allowed=MIDDLEWARE + ADAPTERS.get(module, ()))
    if within("keyturn.client"):
        return Rule(allowed=("keyturn.client", "httpx", "requests"))
    if within("keyturn.server"):
        return Rule(allowed=("keyturn.server", "keyturn.store", "fastapi", "starlette", "uvicorn"))
    if within("keyturn.fastapi"):
        # Keyturn inside a FastAPI or Starlette app: the server's routes, the middleware's verifier.
        return Rule(
            allowed=("keyturn.fastapi", "keyturn.server", "keyturn.middleware", "fastapi", "starlette")
        )
    if within("keyturn.django"):
        # The Django app shares the service's framework-free parts (the runtime, request and response
        # shapes, client addresses, the chores); never the FastAPI app or its routes.
        return Rule(
            allowed=(
                *DJANGO_SHARES_OF_THE_SERVER,
                "keyturn.django",
                "keyturn.store",
                "keyturn.middleware",
                "django",
                "rest_framework",
            )
        )
    if module.count(".") == 1:
        return Rule()  # the core: nothing outward at all
    raise LookupError(f"no rule says what {module} may import: add one to {__file__}")


def package_modules() -> list[tuple[str, Path]]:
    """Every module of the installed keyturn package, by dotted name."""
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        found.append((".".join(parts), path))
    return found


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
        if any(within(name, root) for root in PARTS + FRAMEWORKS_AND_DRIVERS):
            bad.add(name)
    return bad


MODULES = package_modules()


def test_the_tree_is_read() -> None:
    """The module list comes from the tree: the core, every part and the client must all be in it."""
    names = {name for name, _ in MODULES}

    assert {"keyturn.sessions", "keyturn.errors", "keyturn.server.app", "keyturn.client.manager"} <= names
    assert {"keyturn.store.memory", "keyturn.middleware.verifier"} <= names


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[name for name, _ in MODULES])
def test_every_module_imports_only_inward(module: str, path: Path) -> None:
    """Each module keeps to its part's rule (DESIGN: dependencies point inward)."""
    imports = imported_modules(path.read_text(), module)

    assert violations(imports, allowed=rule_for(module).allowed) == set()


def test_a_module_outside_every_rule_is_refused() -> None:
    """A new part of the tree must get a rule before its modules pass."""
    with pytest.raises(LookupError):
        rule_for("keyturn.newpart.thing")


def test_the_core_may_not_reach_a_part() -> None:
    """The core's rule allows nothing outward, the client's nothing of the server."""
    assert violations({"keyturn.server.app"}, rule_for("keyturn.sessions").allowed) == {"keyturn.server.app"}
    assert violations({"keyturn.store.redis"}, rule_for("keyturn.client.manager").allowed) == {
        "keyturn.store.redis"
    }
    assert violations({"keyturn.store.sqlite"}, rule_for("keyturn.testing").allowed) == {
        "keyturn.store.sqlite"
    }
    assert violations({"fastapi"}, rule_for("keyturn.middleware.django").allowed) == {"fastapi"}
    assert violations({"keyturn.server.app"}, rule_for("keyturn.django.views").allowed) == {
        "keyturn.server.app"
    }


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


def private_imports_from_elsewhere(imports: set[str], module: str) -> set[str]:
    """The private modules (``_name``) in ``imports`` of a part of the tree (PARTS; the core's: of
    ``keyturn``) ``module`` is not in: what two parts share goes through a public module, so a private one
    can change without breaking another part."""
    found = set()
    for name in imports:
        parts = name.split(".")
        private = next((i for i, p in enumerate(parts) if p.startswith("_") and not p.startswith("__")), None)
        if private is None:
            continue
        package = ".".join(parts[:private])
        owner = next((p for p in PARTS if package == p or package.startswith(p + ".")), "keyturn")
        if not (module == owner or module.startswith(owner + ".")):
            found.add(name)
    return found


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[name for name, _ in MODULES])
def test_private_modules_are_imported_only_within_their_package(module: str, path: Path) -> None:
    """``keyturn.django`` read ``keyturn.middleware._dpop``'s ``BEARER`` and ``Presented``: the contract
    between the packages is their public modules (``keyturn.middleware`` exports both)."""
    assert private_imports_from_elsewhere(imported_modules(path.read_text(), module), module) == set()


def test_the_private_import_check_sees_one_across_packages() -> None:
    """The check above must see the import it was written for, and allow the core's and a package's own."""
    assert private_imports_from_elsewhere(
        {"keyturn.middleware._dpop", "keyturn.middleware._dpop.BEARER"}, "keyturn.django.authentication"
    ) == {"keyturn.middleware._dpop", "keyturn.middleware._dpop.BEARER"}
    own = {"keyturn.middleware._dpop", "keyturn._jws"}
    assert private_imports_from_elsewhere(own, "keyturn.middleware.verifier") == set()
    assert private_imports_from_elsewhere({"keyturn.server.routes._common"}, "keyturn.server.hooks") == set()
    assert private_imports_from_elsewhere({"keyturn.store._chain"}, "keyturn.store.redis._store") == set()
