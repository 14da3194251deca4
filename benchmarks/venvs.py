"""The virtualenvs the benchmark's clients run in.

Our project and httpcore 1.0.9 share the import name ``httpcore``, so they cannot live in one
environment: "peers" holds httpcore 1.0.9 and the other clients, "ours" holds this repository's
five distributions (editable). niquests gets its own venv ("niquests"): its urllib3-future
dependency may install over urllib3's import name. The cold-start scenarios use four more
venvs with regular (non-editable) installs, so both projects are imported the same way:
our httpcore-base alone, ours with every extra, httpcore 1.0.9 alone and 1.0.9 with every
extra. A venv is (re)built when its requirements change (the cold venvs of ours also when a
source file changes, since they hold a built copy).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = REPO / "packages"

PEERS_REQUIREMENTS = [
    "httpcore==1.0.9",
    "h11",
    "anyio",
    "trio",
    "h2",
    "urllib3",
    "aiohttp",
    "trustme",
    "httpx==0.28.*",
    "pycurl",
    "uvloop",
]

OURS_REQUIREMENTS = [
    "-e",
    str(PACKAGES / "httpcore-base"),
    "-e",
    str(PACKAGES / "httpcore-async") + "[asyncio,trio]",
    "-e",
    str(PACKAGES / "httpcore-http2"),
    "-e",
    str(PACKAGES / "httpcore-socks"),
    "-e",
    str(PACKAGES / "httpcore"),
    "anyio",
    "trio",
    "h2",
    "httpx==0.28.*",
    "uvloop",
]

NIQUESTS_REQUIREMENTS = ["niquests==3.*"]

# Cold start: regular installs (a wheel built from packages/, or from PyPI).
COLD_VENVS = {
    "cold-base": [str(PACKAGES / "httpcore-base")],
    "cold-all": [
        str(PACKAGES / "httpcore-base"),
        str(PACKAGES / "httpcore-async") + "[asyncio,trio]",
        str(PACKAGES / "httpcore-http2"),
        str(PACKAGES / "httpcore-socks"),
        str(PACKAGES / "httpcore") + "[asyncio,trio,http2,socks]",
    ],
    "cold-109": ["httpcore==1.0.9"],
    "cold-109-all": ["httpcore[asyncio,trio,http2,socks]==1.0.9"],
}

PEER_DISTRIBUTIONS = [
    "httpcore", "h11", "h2", "anyio", "trio", "urllib3", "aiohttp", "httpx", "pycurl", "uvloop",
]  # fmt: skip


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _stamp(requirements: list[str]) -> str:
    editable = "-e" in requirements
    digest = hashlib.sha256("\n".join(requirements).encode())
    digest.update(sys.version.encode())
    # Editable installs pick up source changes by themselves, but not changed metadata
    # (dependencies, extras, entry points): rebuild when a pyproject.toml changes.
    for item in requirements:
        pyproject = Path(item.split("[")[0]) / "pyproject.toml"
        if pyproject.is_file():
            digest.update(pyproject.read_bytes())
            if not editable:  # a built copy: rebuild when a source file changes
                for source in sorted(pyproject.parent.glob("src/**/*.py")):
                    digest.update(str(source).encode())
                    digest.update(source.read_bytes())
    return digest.hexdigest()


def _create(venv: Path) -> None:
    if venv.exists():
        shutil.rmtree(venv)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    except subprocess.CalledProcessError:
        shutil.rmtree(venv, ignore_errors=True)
        if shutil.which("uv"):
            subprocess.run(["uv", "venv", "--seed", "-p", sys.executable, str(venv)], check=True)
        else:
            subprocess.run([sys.executable, "-m", "virtualenv", str(venv)], check=True)


def ensure(venv: Path, requirements: list[str]) -> str:
    """Create or refresh ``venv`` with ``requirements``; return its python executable."""
    stamp_file = venv / ".bench-stamp"
    stamp = _stamp(requirements)
    python = _python(venv)
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return str(python)
    print(f"setting up {venv.name} ...", flush=True)
    _create(venv)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
        check=True,
    )
    stamp_file.write_text(stamp)
    return str(python)


def ensure_ours(work: Path) -> tuple[str | None, str]:
    """Set up the "ours" venv; return (python, "") or (None, error) when it cannot install."""
    return try_ensure(work, "ours", OURS_REQUIREMENTS)


def try_ensure(work: Path, name: str, requirements: list[str]) -> tuple[str | None, str]:
    """Set up ``venv-<name>``; return (python, "") or (None, error) when it cannot install."""
    try:
        return ensure(work / f"venv-{name}", requirements), ""
    except subprocess.CalledProcessError as exc:
        return None, f"installing the {name} venv failed ({exc})"


def versions(python: str, distributions: list[str]) -> dict[str, str]:
    code = (
        "import sys, json\n"
        "from importlib.metadata import version, PackageNotFoundError\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        out[name] = version(name)\n"
        "    except PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([python, "-c", code, *distributions], capture_output=True, text=True)
    if result.returncode != 0:
        return {}
    return dict(json.loads(result.stdout))
