"""Build the wheel and sdist of all five distributions, then verify the wheels.

Usage::

    python scripts/build_all.py [--outdir dist] [--isolation | --no-isolation]

Writes ten artifacts into ``--outdir`` (default ``./dist``, cleared of earlier artifacts of these
distributions first) using ``python -m build``. By default the builds run without isolation when
``hatchling`` is importable by this interpreter (fast, no network), else in isolated environments.

Each wheel is checked:

* it contains ``httpcore/<name>/py.typed`` (the meta wheel: ``httpcore/py.typed``);
* only the meta wheel contains ``httpcore/__init__.py``; capability wheels contain nothing
  outside ``httpcore/<name>/`` and their ``.dist-info``;
* its metadata ``Version`` equals ``__version__`` of ``httpcore/base/_version.py``, and every
  ``Requires-Dist`` pin on a sibling is ``==`` that version.

Each sdist must carry the same version in its name and ``PKG-INFO``. Exit status 1 on any problem.
"""

from __future__ import annotations

import argparse
import email.parser
import importlib.util
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from set_version import read_version  # noqa: E402

# distribution name -> the folder its wheel ships under `httpcore/` ("" for the meta-package).
DISTRIBUTIONS: Dict[str, str] = {
    "httpcore-base": "base",
    "httpcore-async": "aio",
    "httpcore-http2": "http2",
    "httpcore-http3": "http3",
    "httpcore-socks": "socks",
    "httpcore": "",
}

_SIBLING = re.compile(r"^httpcore(-(base|async|http2|http3|socks))?$")


def _normalized(name: str) -> str:
    """Project name as it appears in artifact file names (PEP 491 / PEP 625)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _artifacts(outdir: Path, dist: str, version: str) -> List[Path]:
    stem = f"{_normalized(dist)}-{version}"
    return sorted(outdir.glob(f"{stem}-*.whl")) + sorted(outdir.glob(f"{stem}.tar.gz"))


def build(dist: str, outdir: Path, isolation: bool) -> None:
    """Build the sdist and the wheel (from the sdist) of one distribution into `outdir`."""
    command = [sys.executable, "-m", "build", "--outdir", str(outdir)]
    if not isolation:
        command.append("--no-isolation")
    command.append(str(ROOT / "packages" / dist))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"building {dist} failed (exit status {result.returncode})")


def _parse_metadata(text: str) -> email.message.Message:
    return email.parser.Parser().parsestr(text)


def _check_requirements(
    where: str, metadata: email.message.Message, version: str, problems: List[str]
) -> None:
    for requirement in metadata.get_all("Requires-Dist") or []:
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*)", requirement)
        if match is None or not _SIBLING.match(match.group(1).lower()):
            continue
        specifier = match.group(3).strip().strip("()").replace(" ", "")
        if specifier != f"=={version}":
            problems.append(f"{where}: sibling pin {requirement!r} is not =={version}")


# The meta wheel: the re-export, and the command line (`python -m httpcore`, `httpcore`).
META_FILES = (
    "httpcore/__init__.py",
    "httpcore/py.typed",
    "httpcore/__main__.py",
    "httpcore/_cli.py",
    "httpcore/_cli_trace.py",
)


def verify_wheel(path: Path, dist: str, version: str) -> List[str]:
    """Return the problems found in one wheel."""
    problems: List[str] = []
    folder = DISTRIBUTIONS[dist]
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        dist_info = [n for n in names if n.split("/", 1)[0].endswith(".dist-info")]
        payload = [n for n in names if n not in dist_info]
        package_dir = f"httpcore/{folder}/" if folder else "httpcore/"
        typed = f"{package_dir}py.typed"
        if typed not in names:
            problems.append(f"{path.name}: missing {typed}")
        if folder:
            if "httpcore/__init__.py" in names:
                problems.append(f"{path.name}: ships httpcore/__init__.py (only the meta may)")
            strays = [n for n in payload if not n.startswith(package_dir)]
            if strays:
                problems.append(f"{path.name}: files outside {package_dir}: {strays}")
        else:
            if "httpcore/__init__.py" not in names:
                problems.append(f"{path.name}: missing httpcore/__init__.py")
            strays = [n for n in payload if n not in META_FILES]
            if strays:
                problems.append(f"{path.name}: the meta wheel ships more than __init__: {strays}")
        metadata_files = [n for n in dist_info if n.endswith(".dist-info/METADATA")]
        if len(metadata_files) != 1:
            problems.append(f"{path.name}: expected one METADATA, found {metadata_files}")
            return problems
        metadata = _parse_metadata(wheel.read(metadata_files[0]).decode("utf-8"))
    if metadata["Name"] != dist:
        problems.append(f"{path.name}: metadata Name {metadata['Name']!r} != {dist!r}")
    if metadata["Version"] != version:
        problems.append(f"{path.name}: metadata Version {metadata['Version']!r} != {version!r}")
    _check_requirements(path.name, metadata, version, problems)
    return problems


def verify_sdist(path: Path, dist: str, version: str) -> List[str]:
    """Return the problems found in one sdist."""
    problems: List[str] = []
    top = f"{_normalized(dist)}-{version}"
    with tarfile.open(path) as sdist:
        try:
            member = sdist.extractfile(f"{top}/PKG-INFO")
        except KeyError:
            member = None
        if member is None:
            return [f"{path.name}: no {top}/PKG-INFO"]
        metadata = _parse_metadata(member.read().decode("utf-8"))
    if metadata["Version"] != version:
        problems.append(f"{path.name}: PKG-INFO Version {metadata['Version']!r} != {version!r}")
    _check_requirements(path.name, metadata, version, problems)
    return problems


def verify(outdir: Path, version: str) -> List[str]:
    """Check that `outdir` holds exactly one wheel and one sdist per distribution, all sound."""
    problems: List[str] = []
    for dist in DISTRIBUTIONS:
        found = _artifacts(outdir, dist, version)
        wheels = [p for p in found if p.suffix == ".whl"]
        sdists = [p for p in found if p.name.endswith(".tar.gz")]
        if len(wheels) != 1 or len(sdists) != 1:
            problems.append(f"{dist}: expected 1 wheel + 1 sdist at {version}, found {found}")
            continue
        problems += verify_wheel(wheels[0], dist, version)
        problems += verify_sdist(sdists[0], dist, version)
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--outdir", type=Path, default=ROOT / "dist")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--isolation", dest="isolation", action="store_true", default=None)
    group.add_argument("--no-isolation", dest="isolation", action="store_false")
    parser.add_argument(
        "--verify-only", action="store_true", help="check the artifacts already in --outdir"
    )
    args = parser.parse_args(argv)
    outdir: Path = args.outdir.resolve()
    isolation: bool = args.isolation
    if isolation is None:
        isolation = importlib.util.find_spec("hatchling") is None
    version = read_version()

    if not args.verify_only:
        outdir.mkdir(parents=True, exist_ok=True)
        for dist in DISTRIBUTIONS:
            for old in outdir.glob(f"{_normalized(dist)}-*"):
                if old.name.endswith((".whl", ".tar.gz")):
                    old.unlink()
        for dist in DISTRIBUTIONS:
            print(f"building {dist} {version} ...", flush=True)
            build(dist, outdir, isolation)

    problems = verify(outdir, version)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if problems:
        return 1
    for dist in DISTRIBUTIONS:
        for artifact in _artifacts(outdir, dist, version):
            print(f"ok  {artifact.relative_to(outdir.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
