"""Run only by ``test_log_sweep.py`` (the name keeps it out of normal collection): a test that passes but
logs the token it is given, so that the session's log sweep must fail the run."""

from __future__ import annotations

import logging
import os


def test_logs_a_token() -> None:
    """Logs ``KEYTURN_TEST_LEAK`` as a careless handler might; the sweep at the end must catch it."""
    token = os.environ["KEYTURN_TEST_LEAK"]
    logging.getLogger("keyturn.example").warning("refreshing with %s", token)
    assert token
