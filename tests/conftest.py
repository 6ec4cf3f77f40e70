from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from . import _logsweep
from ._secrets import MADE

# The suite runs on a shared 2-core machine beside real servers: how long Hypothesis takes to make or run
# an example says nothing about the code under test, so its timing checks (the too-slow health check and
# the 200 ms deadline per example) are off for every test.
settings.register_profile("keyturn", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("keyturn")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many pytest-xdist workers ``-n auto`` (pyproject.toml's default) starts: two a core, at least four.

    Most of the suite's time is spent waiting (60 s browser and fault runs, tokens expiring, servers and
    browsers starting), so more workers than cores overlap the waits. Tests that must not run beside each
    other share an ``xdist_group`` (one worker runs them one after another).
    """
    return max(4, 2 * len(os.sched_getaffinity(0)))


SHARED_SERVER_MODULES: dict[str, str | None] = {
    "e2e/test_api_cookies.py": "api",
    "e2e/test_api_login.py": "api",
    "e2e/test_api_logout_and_revoke.py": "api",
    "e2e/test_api_operations.py": "api",
    "e2e/test_api_refresh.py": "api",
    "e2e/test_api_sessions.py": "api",
    "e2e/test_cli.py": None,
    "e2e/test_client.py": None,
    "e2e/test_client_crowd.py": None,
    "e2e/test_client_session_end.py": None,
    "e2e/test_client_simplejwt.py": None,
    "e2e/test_docs_run.py": None,
    "e2e/test_faults.py": None,
    "e2e/test_hostile_requests.py": None,
    "e2e/test_hostile_tokens.py": None,
    "e2e/test_middleware_frameworks.py": None,
    "e2e/test_simplejwt_server.py": None,
}
"""Modules of short tests sharing module-scoped servers: one pytest-xdist worker runs each (one per value of
the named parametrized fixture), so that their servers start once, not once on every worker."""
SHARED_SERVER_GROUPS: dict[str, str] = {
    **dict.fromkeys([m for m in SHARED_SERVER_MODULES if m.startswith("e2e/test_api_")], "e2e/api"),
    **dict.fromkeys([m for m in SHARED_SERVER_MODULES if m.startswith("e2e/test_hostile_")], "e2e/hostile"),
}
"""Modules sharing package-scoped servers (``api`` and ``hostile`` of ``tests/e2e/conftest.py``): one group
name for all of them, so that one worker runs them all (one per value of the fixture), starting each once."""
_TESTS = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.relative_to(_TESTS).as_posix() if item.path.is_relative_to(_TESTS) else ""
        if module.startswith("browser/"):
            # One Chromium at a time: a browser's timing tests never share the cores with another browser.
            if item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group("browser"))
            continue
        if module not in SHARED_SERVER_MODULES:
            continue
        split_by = SHARED_SERVER_MODULES[module]
        group = SHARED_SERVER_GROUPS.get(module, module)
        callspec = getattr(item, "callspec", None)
        value = None if split_by is None or callspec is None else callspec.params.get(split_by)
        item.add_marker(pytest.mark.xdist_group(group if value is None else f"{group}-{value}"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# What looks like a JWT or a piece of one: a token's start, a long segment after a dot, or the tail that a
# truncated repr leaves after its "...". A failure report must never carry a token.
_JWT_LIKE = re.compile(
    r"eyJ[A-Za-z0-9_\-.]*"
    r"|[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]{40,}[A-Za-z0-9_\-.]*"
    r"|(?<=\.\.\.)[A-Za-z0-9_\-.]{16,}"
)
# An argument or local whose name says it is a password or a secret, as a traceback shows it.
_SECRET_ARGUMENT = re.compile(r"(\b\w*(?:password|secret)\w*\s*=\s*)(['\"]).*?\2", re.IGNORECASE)
_WITHHELD = "<token withheld>"


def _scrub(text: str) -> str:
    for secret in MADE:
        text = text.replace(secret, "<secret withheld>")
    return _SECRET_ARGUMENT.sub(r"\1<secret withheld>", _JWT_LIKE.sub(_WITHHELD, text))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Scrub tokens, passwords and secrets out of failure reports (tracebacks show call arguments)."""
    report: pytest.TestReport = yield
    if report.longrepr is not None:
        text = str(report.longrepr)
        scrubbed = _scrub(text)
        if scrubbed != text:
            report.longrepr = scrubbed
    report.sections = [(title, _scrub(content)) for title, content in report.sections]
    return report


# -- the log sweep (issue 7): no token or password in any log line of the whole suite --------------------


def pytest_configure(config: pytest.Config) -> None:
    """Start capturing every log line of the session (see ``tests/_logsweep.py``)."""
    if _logsweep.SWEEP is None:
        _logsweep.start()


_WORKER_LEAKS: list[str] = []
"""Under pytest-xdist, the controller's list of what each worker's sweep found (see below)."""


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """Under pytest-xdist (controller): keep what the sweep of a worker that finished found."""
    found = getattr(node, "workeroutput", {}).get("log_sweep_leaks")
    if found:
        _WORKER_LEAKS.extend(found)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Sweep every captured line; a leak fails the run with a report that names where, never the secret.

    The failure is reported as a failed item ``tests/_logsweep.py::log_sweep``, so that it shows among
    the failures and in the summary line, not only in the exit status. Under pytest-xdist each worker
    sweeps its own lines and hands what it found to the controller (``workeroutput``), which reports
    them with its own.
    """
    corpus = _logsweep.SWEEP
    if corpus is None:
        return
    leaks = corpus.scan()
    kept = _logsweep.finish(keep=bool(leaks))
    found = [f"- {leak} (corpus kept in {kept})" for leak in leaks]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput["log_sweep_leaks"] = found
        return
    found += _WORKER_LEAKS
    if not found:
        return
    text = "\n".join(
        [
            f"{len(found)} log line(s) hold a token or a password (DESIGN section 9)",
            *found[:50],
        ]
    )
    report = pytest.TestReport(
        nodeid="tests/_logsweep.py::log_sweep",
        location=("tests/_logsweep.py", 0, "log_sweep"),
        keywords={},
        outcome="failed",
        longrepr=text,
        when="call",
    )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # counted in the summary and listed with the failures, after the run
        reporter.stats.setdefault("failed", []).append(report)
    else:
        session.config.hook.pytest_runtest_logreport(report=report)
    session.testsfailed += 1
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    _logsweep.finish(keep=False)
