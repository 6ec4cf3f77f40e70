"""The project's own test suite runs with ``keyturn.django`` installed: Django's test runner, ``TestCase``.

Django makes an in-memory SQLite database for the tests: Keyturn takes its memory store for it, and the
routes ask the subject check on the request's own thread, so users a ``TestCase`` made (in a transaction no
other connection sees) log in, refresh and call the API.
"""

from __future__ import annotations

from pathlib import Path

from ._project import ExampleProject


def test_the_examples_testcase_logs_in_and_refreshes(tmp_path: Path) -> None:
    project = ExampleProject(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}")

    # manage() asserts the exit status: a failing or erroring test fails it
    project.manage("test", "api", "--verbosity", "2")
