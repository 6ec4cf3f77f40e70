"""The README's curl walk-through, run as written against a real server (only the port differs)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from ._server import demo_service

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough_script() -> str:
    text = README.read_text()
    found = re.search(r"<!-- walkthrough -->\s*```sh\n(.*?)```", text, re.DOTALL)
    assert found, "README has no walk-through block"
    return found.group(1)


def test_readme_walkthrough_works_as_written(tmp_path: Path) -> None:
    """A new user's first contact: every step of the README must do what the README says it does."""
    with demo_service(tmp_path) as server:
        script = walkthrough_script()
        assert "BASE=http://127.0.0.1:8000" in script
        script = script.replace("BASE=http://127.0.0.1:8000", f"BASE={server.url}")
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # Step 1 and 2: the login summary and the caller's identity.
    assert '"token_type": "Bearer"' in out
    assert '"subject": "demo"' in out
    # Step 4: the replay inside the grace period returned the same new refresh token.
    assert re.search(r"^true$", out, re.MULTILINE)
    # Step 5: logout ended the session and the refresh afterwards is refused as the README shows.
    assert '{"revoked_sessions":["' in out
    last = json.loads(out[out.rindex("{\n") :])
    assert last == {
        "error": "session_revoked",
        "error_description": "The session has been logged out or revoked.",
        "retryable": False,
    }
    assert not (tmp_path / "tokens.json").exists()
