"""MkDocs hook: give mkdocstrings one `httpcore` package tree to read.

The five distributions each ship a part of the `httpcore` namespace from their own source folder,
and only the meta-package has `httpcore/__init__.py`. griffe (mkdocstrings' Python reader)
follows import rules, so a regular package anywhere on its search path hides the namespace
portions. This hook links the parts into `build/docs-src/httpcore/` (git-ignored), the one path
`mkdocs.yml` gives mkdocstrings. It runs when MkDocs loads the hooks, before any page is read.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "build" / "docs-src" / "httpcore"
PARTS = {
    "__init__.py": ROOT / "packages/httpcore/src/httpcore/__init__.py",
    "base": ROOT / "packages/httpcore-base/src/httpcore/base",
    "aio": ROOT / "packages/httpcore-async/src/httpcore/aio",
    "http2": ROOT / "packages/httpcore-http2/src/httpcore/http2",
    "http3": ROOT / "packages/httpcore-http3/src/httpcore/http3",
    "socks": ROOT / "packages/httpcore-socks/src/httpcore/socks",
}


def _link_tree() -> None:
    TREE.mkdir(parents=True, exist_ok=True)
    for name, target in PARTS.items():
        link = TREE / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)


_link_tree()
