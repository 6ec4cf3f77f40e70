"""The wheel a user installs serves a working demo page: built with ``python -m build`` from a copy of this
checkout as a fresh clone has it (no browser bundle, no node_modules), installed into a fresh virtual
environment, run from outside the checkout, signed in from Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext

from ..e2e._server import Cluster, Server, free_port, stop_server, wait_ready
from ._demo import open_tab

CHECKOUT = Path(__file__).parents[2]

pytestmark = pytest.mark.xdist_group("wheel")  # one pytest-xdist worker: the wheel is built once


def fresh_copy(into: Path) -> Path:
    """The files a clone of this checkout has (tracked, and new ones not ignored), as they are now."""
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=CHECKOUT)
    for name in filter(None, listed.split("\0")):
        source = CHECKOUT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def _run(*args: str | Path, cwd: Path, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, input=stdin, text=True, capture_output=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args[:3]} exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``keyturn serve`` from a wheel in a fresh venv, with a user added by that venv's ``keyturn``."""
    place = tmp_path_factory.mktemp("wheel")
    dist, venv, data_dir = place / "dist", place / "venv", place / "data"
    source = fresh_copy(place / "checkout")
    assert not (source / "src" / "keyturn" / "server" / "demo" / "keyturn.js").exists()
    _run(sys.executable, "-m", "build", "--outdir", dist, source, cwd=place)
    (wheel,) = dist.glob("keyturn-*.whl")
    _run(sys.executable, "-m", "venv", venv, cwd=place)
    _run(venv / "bin" / "pip", "install", "--quiet", wheel, cwd=place)
    where = _run(venv / "bin" / "python", "-c", "import keyturn; print(keyturn.__file__)", cwd=place)
    assert Path(where.strip()).is_relative_to(venv), f"keyturn imported from {where}, not the venv"

    group = Cluster(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env["KEYTURN_DATA_DIR"] = str(data_dir)
    added = subprocess.run(
        [venv / "bin" / "keyturn", "users", "add", group.username, "--password-stdin"],
        input=group.password + "\n",
        text=True,
        capture_output=True,
        env=env,
        cwd=place,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    port = free_port()
    log = place / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [venv / "bin" / "keyturn", "serve", "--port", str(port)],
            env=env,
            cwd=place,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = wait_ready(Server(f"http://127.0.0.1:{port}", process, data_dir, log))
    group.servers.append(server)
    try:
        yield group
    finally:
        stop_server(server)


def test_the_installed_wheel_serves_a_demo_page_that_signs_in(
    installed: Cluster, context: BrowserContext
) -> None:
    """The wheel carries the browser bundle: the page loads it, shows the form and signs in."""
    tab = open_tab(context, installed)
    tab.sign_in()

    tab.page.locator("#who").filter(has_text=f"signed in as {installed.username}").wait_for()
    assert tab.sid
