"""The README's tables and the code name the same error codes and settings."""

from __future__ import annotations

import re
from pathlib import Path

from keyturn.config import Settings
from keyturn.errors import ERRORS_BY_CODE
from keyturn.ratelimit import RateLimit

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _table_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return section.split("\n## ", 1)[0]


def test_error_table_lists_exactly_the_wire_codes() -> None:
    """Clients are written from the README: a code missing there, or invented there, breaks them."""
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", _table_after("## Error codes"), re.MULTILINE)
    documented = {code: status for code, status in rows}
    assert set(documented) == set(ERRORS_BY_CODE)
    for code, cls in ERRORS_BY_CODE.items():
        assert str(cls.status) in documented[code], code


def test_settings_table_lists_every_setting() -> None:
    """Every setting an operator can set is documented, and nothing documented is missing from Settings."""
    table = _table_after("## Settings")
    documented: set[str] = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE):
        documented.update(name.lower() for name in re.findall(r"`([A-Z_]+)`", cell))
    assert documented == set(Settings.model_fields)


def test_settings_table_states_each_default() -> None:
    """The table's default of each setting is the code's: a number, a name (`ES256`), a rate (`30/900`),
    on or off, or none (unset, none)."""
    table = _table_after("## Settings")
    defaults = Settings.model_fields
    wrong = []
    for names, default in re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \| ([^|]+) \|", table, re.MULTILINE):
        values = re.findall(r"`([^`]+)`", default)
        for name, said in zip(re.findall(r"`([A-Z_]+)`", names), values or [default.strip()], strict=False):
            actual = defaults[name.lower()].default
            if said in ("on", "off"):
                ok = actual is (said == "on")
            elif said in ("unset", "none"):
                ok = actual in (None, ())
            elif isinstance(actual, RateLimit):
                ok = f"{actual.count}/{actual.period:g}" == said
            elif isinstance(actual, int | float) and not isinstance(actual, bool):
                ok = re.fullmatch(r"[0-9.]+", said) is not None and float(said) == actual
            elif isinstance(actual, str):
                ok = actual == said
            else:
                continue  # derived at start: the store URL, the data directory, the secret
            if not ok:
                wrong.append(f"{name}: README {said!r}, code {actual!r}")

    assert wrong == []


def test_the_browser_clients_error_codes_are_the_wire_codes() -> None:
    """The TypeScript ``ErrorCode`` union, the Python error model and the README name the same codes."""
    source = (Path(__file__).resolve().parents[2] / "clients/js/src/errors.ts").read_text()
    union = source.split("export type ErrorCode =", 1)[1].split(";", 1)[0]
    typescript = set(re.findall(r'"([a-z_]+)"', union))

    assert typescript == set(ERRORS_BY_CODE)


def test_the_python_clients_definitive_codes_are_wire_codes() -> None:
    """A definitive code the client waits for but the service never sends would be a session never ended."""
    from keyturn.client._endpoints import DEFINITIVE

    assert set(DEFINITIVE) <= set(ERRORS_BY_CODE)


def test_the_command_synopsis_names_every_option() -> None:
    """Each option of each ``keyturn`` command is in the README's synopsis (``--help`` says the rest)."""
    import argparse

    from keyturn.server.cli import build_parser

    synopsis = README.split("## The `keyturn` command", 1)[1].split("```", 2)[1]

    def options(parser: argparse.ArgumentParser) -> set[str]:
        found = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found |= options(sub)
            else:
                found.update(o for o in action.option_strings if o.startswith("--") and o != "--help")
        return found

    missing = {o for o in options(build_parser()) if o not in synopsis}

    assert missing == set()


def test_the_docs_point_only_at_files_in_the_repository() -> None:
    """Every relative link of the README and docs/ names a file that is here, and none names the design file
    the repository does not carry (the docs stand on their own)."""
    root = Path(__file__).resolve().parents[2]
    pages = [
        root / "README.md",
        root / "SECURITY.md",
        root / "clients/js/README.md",
        *(root / "docs").glob("*.md"),
    ]
    missing = []
    for page in pages:
        text = page.read_text()
        assert "DESIGN" not in text, f"{page.name} refers to the design file"
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(root)} -> {target}")

    assert missing == []


def test_docs_client_lists_the_refresh_endpoints_definitive_codes() -> None:
    """docs/client.md names exactly the codes that end a session at the refresh endpoint: a code missing
    there is a session end its readers do not expect (``refresh_token_bound`` for a copied DPoP session)."""
    from keyturn.client._endpoints import DEFINITIVE

    page = (Path(__file__).resolve().parents[2] / "docs/client.md").read_text()
    item = page.split("**Definitive answers end it, once.**", 1)[1].split(" the stored pair", 1)[0]

    assert set(re.findall(r"`([a-z_]+)`", item)) == set(DEFINITIVE)
