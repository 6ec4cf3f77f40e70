"""The comparison's own virtual environment: SimpleJWT, gunicorn and matplotlib, never Keyturn's dev venv.

:func:`ensure` makes ``bench/compare/.venv`` with ``python -m venv`` and installs ``requirements.txt``
(pinned) from the package index with pip; a stamp file (a hash of the requirements and of the Python
version) lets later runs reuse it, and a changed requirements file or Python makes it anew.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
VENV = HERE / ".venv"
STAMP_NAME = ".bench-stamp"


def _fingerprint() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure(venv: Path = VENV) -> Path:
    """The venv's Python, after making or updating the venv if its stamp does not match."""
    stamp = venv / STAMP_NAME
    wanted = _fingerprint()
    if stamp.is_file() and stamp.read_text().strip() == wanted and python_of(venv).exists():
        return python_of(venv)
    started = time.monotonic()
    print(f"setting up {venv} (SimpleJWT, gunicorn, matplotlib from {REQUIREMENTS.name}) ...", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python_of(venv)), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    for args in (["install", "--upgrade", "pip"], ["install", "-r", str(REQUIREMENTS)]):
        done = subprocess.run([*pip, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:  # pip's output only when it failed: a working install says nothing
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"pip {' '.join(args)} failed in {venv}")
    stamp.write_text(wanted + "\n")
    print(f"  ready in {time.monotonic() - started:.0f} s", flush=True)
    return python_of(venv)


def versions(python: Path, packages: list[str]) -> dict[str, str]:
    """Installed versions of ``packages`` in the venv of ``python``."""
    code = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
    )
    out = subprocess.run([str(python), "-c", code, *packages], check=True, capture_output=True, text=True)
    found: dict[str, str] = json.loads(out.stdout)
    return found
