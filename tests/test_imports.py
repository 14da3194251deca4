"""Import hygiene and the public surface of the `httpcore` meta-package (API.md §1, §9).

Each import is checked in a fresh interpreter so that earlier tests cannot have loaded anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
from packaging_helpers import (
    ANYIO_MESSAGE,
    ASYNC_NAMES,
    HTTP2_MESSAGE,
    HTTP2_NAMES,
    HTTP3_MESSAGE,
    HTTP3_NAMES,
    HTTPCORE_1_0_9_NAMES,
    OPTIONAL_LIBRARIES,
    PUBLIC_NAMES,
    ROOT,
    SOCKS_MESSAGE,
    SOCKS_NAMES,
    SOURCE,
    TRIO_MESSAGE,
    loaded_after,
    run_python,
    source_version,
)


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        ("import httpcore.base", ["anyio", "trio", "h2", "aioquic", "socksio"]),
        ("import httpcore.http2", ["socksio", "anyio", "trio", "aioquic"]),
        ("import httpcore.http3", ["socksio", "anyio", "trio", "h2"]),
        ("import httpcore.socks", ["h2", "anyio", "trio", "aioquic"]),
        ("import httpcore.aio", ["h2", "socksio", "aioquic"]),
        # The meta-package resolves the optional capabilities lazily.
        ("import httpcore", ["anyio", "trio", "h2", "aioquic", "socksio"]),
        # A pool without http3 does not look for it.
        ("import httpcore; httpcore.ConnectionPool()", ["aioquic", "httpcore.http3"]),
        ("from httpcore import ConnectionPool, ReadError, Request", OPTIONAL_LIBRARIES),
    ],
)
def test_import_loads_only_what_it_needs(statement: str, forbidden: List[str]) -> None:
    loaded = loaded_after(statement, forbidden)
    assert loaded == {}, f"{statement!r} loaded {loaded} (module -> importing line)"


def test_meta_import_does_not_import_optional_capabilities() -> None:
    code = (
        "import sys, httpcore\n"
        "print(sorted(m for m in ('httpcore.aio', 'httpcore.http2', 'httpcore.http3',"
        " 'httpcore.socks')"
        " if m in sys.modules))"
    )
    assert run_python(code).strip() == "[]"


def test_all_is_httpcore_1_0_9_plus_http3() -> None:
    import httpcore

    assert set(HTTPCORE_1_0_9_NAMES) <= set(httpcore.__all__)
    assert set(httpcore.__all__) - set(HTTPCORE_1_0_9_NAMES) == set(HTTP3_NAMES)
    assert set(httpcore.__all__) == set(PUBLIC_NAMES)
    assert len(httpcore.__all__) == len(PUBLIC_NAMES)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_is_attribute(name: str) -> None:
    import httpcore

    assert hasattr(httpcore, name)
    assert name in dir(httpcore)


@pytest.mark.parametrize("name", [n for n in PUBLIC_NAMES if n != "SOCKET_OPTION"])
def test_public_name_module_is_httpcore(name: str) -> None:
    import httpcore

    assert getattr(httpcore, name).__module__ == "httpcore"


def test_module_set_at_import_time() -> None:
    # The eager (httpcore-base) names are renamed as soon as `httpcore` is imported.
    out = run_python(
        "import httpcore.base\nimport httpcore\n"
        "print(repr(httpcore.base.ReadError), httpcore.base.request.__module__)"
    )
    assert out.split() == ["<class", "'httpcore.ReadError'>", "httpcore"]


def test_exception_repr() -> None:
    import httpcore

    assert repr(httpcore.ReadError) == "<class 'httpcore.ReadError'>"


def test_star_import_binds_every_name() -> None:
    namespace: dict[str, object] = {}
    exec("from httpcore import *", namespace)
    assert set(PUBLIC_NAMES) <= set(namespace)


def test_unknown_attribute_raises_attribute_error() -> None:
    import httpcore

    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        httpcore.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_names_are_the_capability_objects() -> None:
    # In the development environment every capability is installed, so nothing is a placeholder.
    import httpcore
    import httpcore.aio
    import httpcore.base
    import httpcore.http2
    import httpcore.http3
    import httpcore.socks

    for name in PUBLIC_NAMES:
        module = sys.modules[SOURCE[name]]
        assert getattr(httpcore, name) is getattr(module, name), name


def test_version_matches_source_of_truth() -> None:
    import httpcore
    import httpcore.base

    assert httpcore.__version__ == source_version()
    assert httpcore.__version__.startswith("1.")


def test_set_version_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "set_version.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_set_version_check_reports_mismatch(tmp_path: Path) -> None:
    root = tmp_path
    shutil.copytree(ROOT / "packages", root / "packages", ignore=shutil.ignore_patterns("src"))
    version_file = root / "packages" / "httpcore-base" / "src" / "httpcore" / "base"
    version_file.mkdir(parents=True)
    (version_file / "_version.py").write_text('__version__ = "1.99.0"\n')
    script = str(ROOT / "scripts" / "set_version.py")

    check = [sys.executable, script, "--check", "--root", str(root)]
    result = subprocess.run(check, capture_output=True, text=True)
    assert result.returncode == 1
    assert "httpcore-base==" in result.stdout and "1.99.0" in result.stdout

    fix = subprocess.run(
        [sys.executable, script, "--root", str(root)], capture_output=True, text=True
    )
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0
    meta = (root / "packages" / "httpcore" / "pyproject.toml").read_text()
    assert 'version = "1.99.0"' in meta
    assert '"httpcore-async[trio]==1.99.0"' in meta


@pytest.mark.parametrize(
    ("blocked", "expected"),
    [
        ("httpcore.aio", {name: "httpcore[asyncio]" for name in ASYNC_NAMES}),
        ("httpcore.aio", {"AnyIOBackend": ANYIO_MESSAGE, "TrioBackend": TRIO_MESSAGE}),
        ("httpcore.http2", {name: HTTP2_MESSAGE for name in HTTP2_NAMES}),
        ("httpcore.http3", {name: HTTP3_MESSAGE for name in HTTP3_NAMES}),
        ("httpcore.socks", {name: SOCKS_MESSAGE for name in SOCKS_NAMES}),
    ],
)
def test_missing_capability_gives_placeholder(blocked: str, expected: Dict[str, str]) -> None:
    # `sys.modules[name] = None` makes `import name` raise ModuleNotFoundError, as if the
    # distribution were not installed.
    code = f"""
import sys
sys.modules[{blocked!r}] = None
import httpcore
for name, message in {expected!r}.items():
    placeholder = getattr(httpcore, name)
    assert placeholder.__module__ == "httpcore" and placeholder.__name__ == name
    try:
        placeholder()
    except RuntimeError as exc:
        assert str(exc) == message or (
            "httpcore[asyncio]" == message and message in str(exc)
        ), (name, str(exc))
        assert isinstance(exc.__cause__, ImportError)
    else:
        raise AssertionError(name + " did not raise")
print("ok")
"""
    assert run_python(code).strip() == "ok"


def test_every_module_of_the_sub_packages_imports() -> None:
    # What an older interpreter would refuse (syntax, annotations evaluated at run time) shows
    # up here on the matrix's Python 3.9, private modules included.
    import importlib
    import pkgutil

    names = []
    for package_name in (
        "httpcore.base",
        "httpcore.aio",
        "httpcore.http2",
        "httpcore.http3",
        "httpcore.socks",
    ):
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, package_name + "."):
            importlib.import_module(module.name)
            names.append(module.name)
    assert "httpcore.base._sync_backend" in names and "httpcore.http3._quic" in names
    assert len(names) > 40
