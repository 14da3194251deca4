"""Propagate the lockstep version to every distribution of the monorepo.

The one source of truth is ``__version__`` in
``packages/httpcore-base/src/httpcore/base/_version.py``. This script rewrites, in every
``packages/*/pyproject.toml``:

* the ``version = "..."`` line of the ``[project]`` table, and
* every exact pin of a sibling distribution inside a requirement string, e.g.
  ``"httpcore-base==1.1.0"`` or ``"httpcore-async[asyncio]==1.1.0"``.

Usage::

    python scripts/set_version.py            # rewrite the files that disagree
    python scripts/set_version.py --check    # report mismatches, exit 1 if there are any
    python scripts/set_version.py 1.2.0      # set a new version in _version.py first, then sync
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = Path("packages", "httpcore-base", "src", "httpcore", "base", "_version.py")

_VERSION_ASSIGNMENT = re.compile(r'^(__version__\s*=\s*)(["\'])([^"\']*)\2', re.MULTILINE)
# `version = "X"` at the start of a line; only the `[project]` table has one in our pyprojects.
_PROJECT_VERSION = re.compile(r'^(version\s*=\s*")([^"]*)(")', re.MULTILINE)
# A pin of a sibling inside a quoted requirement: `httpcore-base==X`, `httpcore-async[trio]==X`,
# also tolerating spaces (`httpcore-base == X`). The plain `httpcore` meta name never appears as a
# dependency of a member, but is accepted too.
_SIBLING_PIN = re.compile(
    r'(["\']\s*httpcore(?:-(?:base|async|http2|http3|socks))?\s*(?:\[[^\]]*\])?\s*==\s*)'
    r'([^"\';,\s]+)'
)
# PEP 440 public version, strict enough to catch typos.
_PEP440 = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


def read_version(root: Path = ROOT) -> str:
    """Return ``__version__`` from the source-of-truth file."""
    match = _VERSION_ASSIGNMENT.search((root / VERSION_FILE).read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit(f"no __version__ assignment in {root / VERSION_FILE}")
    return match.group(3)


def write_version(version: str, root: Path = ROOT) -> None:
    """Store `version` as the new source of truth."""
    path = root / VERSION_FILE
    text = path.read_text(encoding="utf-8")
    new_text, count = _VERSION_ASSIGNMENT.subn(
        lambda m: f"{m.group(1)}{m.group(2)}{version}{m.group(2)}", text, count=1
    )
    if count != 1:
        raise SystemExit(f"no __version__ assignment in {path}")
    path.write_text(new_text, encoding="utf-8")


def pyprojects(root: Path = ROOT) -> List[Path]:
    """The pyproject.toml of each distribution, in a stable order."""
    return sorted((root / "packages").glob("*/pyproject.toml"))


def sync_text(text: str, version: str) -> Tuple[str, List[str]]:
    """Return `text` with every version and sibling pin set to `version`, and what was wrong."""
    problems: List[str] = []

    def fix_project(match: re.Match[str]) -> str:
        if match.group(2) != version:
            problems.append(f'version = "{match.group(2)}"')
        return f"{match.group(1)}{version}{match.group(3)}"

    def fix_pin(match: re.Match[str]) -> str:
        if match.group(2) != version:
            pin = match.group(1).lstrip("\"' ")
            problems.append(f"{pin}{match.group(2)}")
        return f"{match.group(1)}{version}"

    new_text, count = _PROJECT_VERSION.subn(fix_project, text)
    if count != 1:
        raise ValueError(f"expected exactly one `version = ...` line, found {count}")
    new_text = _SIBLING_PIN.sub(fix_pin, new_text)
    return new_text, problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("version", nargs="?", help="set this version in _version.py first")
    parser.add_argument(
        "--check", action="store_true", help="only report mismatches; exit 1 if there are any"
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="repository root (default: this checkout)"
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()

    if args.version is not None:
        if args.check:
            parser.error("--check takes no version")
        if not _PEP440.match(args.version):
            parser.error(f"not a PEP 440 release version: {args.version!r}")
        write_version(args.version, root)
    version = read_version(root)

    paths = pyprojects(root)
    if not paths:
        print(f"no packages/*/pyproject.toml under {root}")
        return 1
    mismatches = 0
    for path in paths:
        rel = path.relative_to(root)
        text = path.read_text(encoding="utf-8")
        try:
            new_text, problems = sync_text(text, version)
        except ValueError as exc:
            print(f"{rel}: {exc}")
            return 1
        for problem in problems:
            mismatches += 1
            print(f"{rel}: {problem} (expected {version})")
        if not args.check and new_text != text:
            path.write_text(new_text, encoding="utf-8")
            print(f"{rel}: updated to {version}")

    if args.check:
        if mismatches:
            print(f"{mismatches} mismatch(es) with {VERSION_FILE.as_posix()} ({version})")
            return 1
        print(f"all distributions at {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
