"""The one build step pyproject.toml cannot say: the browser bundle the demo page loads.

``src/keyturn/server/demo/keyturn.js`` (and ``dpop.js``, the DPoP entry it loads) is built from ``clients/js``
(TypeScript, esbuild) and is not kept in git. A wheel or an sdist built from a checkout builds it first (this
needs Node.js and npm); one built from an sdist finds it already there, so installing Keyturn never needs
Node.js.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).parent
DEMO = ROOT / "src" / "keyturn" / "server" / "demo"
BUNDLES = ("keyturn.js", "dpop.js")
BUNDLE = DEMO / BUNDLES[0]
CLIENT = ROOT / "clients" / "js"


def ensure_bundle() -> None:
    """Build the browser bundle from ``clients/js`` unless it is already there."""
    if all((DEMO / name).exists() for name in BUNDLES):
        return
    if not (CLIENT / "package.json").exists():
        raise SystemExit(f"{BUNDLE} is missing and there is no {CLIENT} to build it from")
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("building Keyturn from a checkout needs Node.js and npm (the demo page's bundle)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=CLIENT, check=True)
    subprocess.run([npm, "run", "--silent", "build"], cwd=CLIENT, check=True)
    for name in BUNDLES:
        shutil.copyfile(CLIENT / "dist" / name, DEMO / name)


class BuildPy(build_py):
    def run(self) -> None:
        if not self.editable_mode:  # an editable install serves the checkout, where make builds the bundle
            ensure_bundle()
        super().run()


class SDist(sdist):
    def run(self) -> None:
        ensure_bundle()
        super().run()


setup(cmdclass={"build_py": BuildPy, "sdist": SDist})
