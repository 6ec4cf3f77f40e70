"""The suite's pytest-xdist groups take effect: ``make test`` runs ``--dist loadgroup`` (pyproject.toml),
and a group silently ignored (pytest 9.2 with pytest-xdist 3.8, pytest-xdist#1386) would let the tests that
must not run beside each other do so, and build the wheel once per worker, with every test still passing."""

from __future__ import annotations

import os

import pytest


@pytest.mark.xdist_group("probe")
def test_a_grouped_test_runs_as_part_of_its_group(request: pytest.FixtureRequest) -> None:
    """On a worker of a ``--dist loadgroup`` run, a test marked ``xdist_group`` is scheduled by its group
    (the group is in its node id, which is how pytest-xdist's scheduler sees it)."""
    if not (os.environ.get("PYTEST_XDIST_WORKER") and getattr(request.config.option, "loadgroup", False)):
        pytest.skip("not on a pytest-xdist worker of a --dist loadgroup run")
    assert request.node.nodeid.endswith("@probe"), request.node.nodeid
