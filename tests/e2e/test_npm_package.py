"""Issue 19: the npm package as a user installs it. ``npm pack`` in ``clients/js`` builds first (its
``prepack``) and gives a tarball whose ``.d.ts`` files type-check, without ``skipLibCheck``, in a fresh
TypeScript project under ``moduleResolution`` ``nodenext``, ``node16`` and ``bundler``.

The project installs the tarball and the TypeScript of ``clients/js``'s lock file (from npm's cache when it
holds it), and type-checks a file that uses ``createSession``; an ``@ts-expect-error`` line fails the
check if the package's types silently became ``any``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

JS = Path(__file__).parents[2] / "clients" / "js"
NPM = shutil.which("npm")

APP = """\
import { createSession, SessionEndedError, type Session, type State } from "@keyturn/client";
import { createSession as createBound } from "@keyturn/client/dpop";

const session: Session = createSession({ mode: "cookie", name: "app" });
const state: State = session.state;
session.on("session_ended", (reason: string) => console.log(reason, state));
export const failed = (error: unknown): boolean => error instanceof SessionEndedError;

// @ts-expect-error: not a mode (if the package's types were `any`, this line would be an unused directive)
createSession({ mode: "nonsense" });

export const bound: Session = createBound({ mode: "cookie", dpop: true, name: "bound" });
// @ts-expect-error: `dpop` is a boolean (the DPoP entry's own declarations)
createBound({ dpop: "yes" });
"""

pytestmark = [
    pytest.mark.skipif(NPM is None, reason="npm is not installed"),
    pytest.mark.xdist_group("npm-pack"),  # one pytest-xdist worker: the tarball is packed once
]


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm pack`` from a checkout without ``dist/`` (as a fresh clone has none): a copy of ``clients/js``
    without it, on the checkout's ``node_modules``, so that the checkout's own ``dist/`` (which the browser
    tests load, perhaps at the same time on another pytest-xdist worker) is left alone."""
    assert NPM is not None
    package = tmp_path_factory.mktemp("checkout") / "js"
    shutil.copytree(JS, package, ignore=shutil.ignore_patterns("node_modules", "dist"))
    (package / "node_modules").symlink_to(JS / "node_modules", target_is_directory=True)
    assert not (package / "dist").exists()
    out = tmp_path_factory.mktemp("pack")
    _run([NPM, "pack", "--pack-destination", str(out)], package)
    (packed,) = out.glob("*.tgz")
    return packed


def test_the_tarball_holds_the_built_bundle_and_its_declarations(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert {"package/dist/keyturn.js", "package/dist/index.d.ts", "package/package.json"} <= names
    assert "package/dist/session.d.ts" in names
    assert {"package/dist/dpop.js", "package/dist/dpop.d.ts"} <= names
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/dist/dpop.js")
        assert member is not None
        dpop = member.read().decode()
    # the DPoP entry loads the base bundle beside it rather than carry a copy of it
    assert 'from"./keyturn.js"' in dpop.replace(" ", "")


@pytest.mark.parametrize(
    ("resolution", "module"), [("nodenext", "nodenext"), ("node16", "node16"), ("bundler", "esnext")]
)
def test_the_package_type_checks_in_a_fresh_project(
    tarball: Path, tmp_path: Path, resolution: str, module: str
) -> None:
    assert NPM is not None
    lock = json.loads((JS / "package-lock.json").read_text())
    typescript = lock["packages"]["node_modules/typescript"]["version"]
    (tmp_path / "package.json").write_text(json.dumps({"name": "app", "private": True, "type": "module"}))
    options = {
        "strict": True,
        "module": module,
        "moduleResolution": resolution,
        "target": "ES2022",
        "lib": ["ES2022", "DOM", "DOM.Iterable"],
        "types": [],
        "noEmit": True,
        "skipLibCheck": False,
    }
    (tmp_path / "tsconfig.json").write_text(json.dumps({"compilerOptions": options, "files": ["app.ts"]}))
    (tmp_path / "app.ts").write_text(APP)
    flags = ["--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"]
    _run([NPM, "install", *flags, str(tarball), f"typescript@{typescript}"], tmp_path)

    checked = subprocess.run(
        [str(tmp_path / "node_modules" / ".bin" / "tsc"), "-p", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
