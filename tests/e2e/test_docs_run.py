"""The Python in the docs runs as written: every ``python`` block of README.md and docs/*.md is marked
``<!-- runnable -->`` and run here against a real ``keyturn serve`` (only the port differs),
``<!-- app.py -->`` (docs/fastapi.md's app, put together and served by tests/fastapi/test_docs.py), or
``<!-- not runnable: why -->`` (a fragment of a larger program, a settings file)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._server import Server, demo_service

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCUMENTED_URL = "http://127.0.0.1:8000"

_BLOCK = re.compile(
    r"(?:<!-- (runnable|app\.py|not runnable: [^>]+) -->\n[ \t]*)?```python\n(.*?)```", re.DOTALL
)


def python_blocks() -> Iterator[tuple[str, str | None, str]]:
    """``(where, mark, code)`` for every python block of the docs; ``mark`` is None where there is none."""
    for path in DOCS:
        text = path.read_text()
        for found in _BLOCK.finditer(text):
            line = text.count("\n", 0, found.start(2))
            yield f"{path.relative_to(ROOT)}:{line}", found.group(1), found.group(2)


RUNNABLE = [(where, code) for where, mark, code in python_blocks() if mark == "runnable"]


def test_every_python_block_says_whether_it_runs() -> None:
    """A new block must be marked, so none escapes this test unnoticed."""
    unmarked = [where for where, mark, _ in python_blocks() if mark is None]
    served = {where.split(":")[0] for where, mark, _ in python_blocks() if mark == "app.py"}

    assert unmarked == []
    assert served <= {"docs/fastapi.md"}, (
        "only docs/fastapi.md's app is put together by tests/fastapi/test_docs.py"
    )
    assert len(RUNNABLE) >= 2


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """``keyturn serve`` with the user ``demo`` whose password is where ``make run`` keeps it."""
    workdir = tmp_path_factory.mktemp("docs")
    with demo_service(workdir) as server:
        yield server, workdir


@pytest.mark.parametrize(("where", "code"), RUNNABLE, ids=[where for where, _ in RUNNABLE])
def test_a_runnable_block_runs_as_written(where: str, code: str, service: tuple[Server, Path]) -> None:
    """Each block runs in a fresh interpreter, in the directory ``make run`` would leave, and exits 0."""
    server, workdir = service
    done = subprocess.run(
        [sys.executable, "-c", code.replace(DOCUMENTED_URL, server.url)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, f"{where}:\n{done.stderr[-3000:]}"
