"""Every public name has a docstring (the API reference pages are generated from them).

Public means: each name in the `__all__` of the five packages, and for classes every public
method and property that the class gets from this project's code (not from `object` or
`Exception`). A method that overrides a documented method of a base class of the class that
defines it (e.g. `SyncBackend.connect_tcp` overriding `NetworkBackend.connect_tcp`) is
documented by it, as `help()` and the reference pages (griffe-inherited-docstrings) show it.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any, Iterator, Optional, Tuple

import pytest

PACKAGES = [
    "httpcore.base",
    "httpcore.aio",
    "httpcore.http2",
    "httpcore.http3",
    "httpcore.socks",
    "httpcore",
]

# Names still waiting for a docstring, "<defining module>.<qualified name>" (none today). Add the
# docstring, then delete the entry: the test fails on an entry that is documented, so this list
# only shrinks.
PENDING_DOCSTRINGS: set[str] = set()


def _module_of_file(path: Optional[str], default: str) -> str:
    for name, module in list(sys.modules.items()):
        if name.startswith("httpcore") and getattr(module, "__file__", None) == path:
            return name
    return default


def _real_module(func: Any) -> str:
    """The module that defines function `func` (`httpcore/__init__.py` rewrites `__module__`)."""
    code = getattr(func, "__code__", None)
    default = str(getattr(func, "__module__", "?"))
    return _module_of_file(code.co_filename, default) if code is not None else default


def _defining_class(cls: type, attr: str) -> Optional[type]:
    for klass in cls.__mro__:
        if attr in vars(klass):
            return klass
    return None


def _is_project_class(klass: type) -> bool:
    return klass.__module__.partition(".")[0] == "httpcore"


def _member_doc(klass: type, attr: str) -> Optional[str]:
    """The docstring of `klass.attr`, or of the member it overrides in a base class of `klass`.

    `klass` is the class that defines the member: that is where `help()` and the reference
    pages (griffe-inherited-docstrings) look for an inherited docstring.
    """
    for base in klass.__mro__:
        member = vars(base).get(attr)
        if member is None:
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        doc = getattr(member, "__doc__", None)
        if doc and doc.strip():
            return str(doc)
    return None


def _public_objects() -> Iterator[Tuple[str, str, Optional[str]]]:
    """(public path, key for PENDING_DOCSTRINGS, docstring) for every public name and member."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            if name in ("SOCKET_OPTION", "__version__"):  # a typing alias and a string
                continue
            obj = getattr(module, name)
            if inspect.isclass(obj):
                key = f"{_source_module(obj)}.{obj.__qualname__}"
                yield f"{package}.{name}", key, obj.__doc__
                yield from _members(package, name, obj)
            else:
                yield f"{package}.{name}", f"{_real_module(obj)}.{obj.__qualname__}", obj.__doc__


def _source_module(cls: type) -> str:
    """The module a class is defined in, even after `httpcore/__init__.py` set `__module__`."""
    try:
        path = inspect.getsourcefile(cls)
    except TypeError:
        return str(cls.__module__)
    return _module_of_file(path, str(cls.__module__))


def _members(package: str, name: str, cls: type) -> Iterator[Tuple[str, str, Optional[str]]]:
    for attr in dir(cls):
        if attr.startswith("_"):
            continue
        klass = _defining_class(cls, attr)
        if klass is None or not _is_project_class(klass):
            continue
        member = vars(klass)[attr]
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if not (inspect.isfunction(member) or isinstance(member, property)):
            continue  # class constants (READ_NUM_BYTES, ...) and enum members
        key = f"{_source_module(klass)}.{klass.__qualname__}.{attr}"
        yield f"{package}.{name}.{attr}", key, _member_doc(klass, attr)


def test_every_public_name_has_a_docstring() -> None:
    missing = sorted(
        f"{path} (defined at {key})"
        for path, key, doc in _public_objects()
        if not doc and key not in PENDING_DOCSTRINGS
    )
    assert missing == [], "public names without a docstring:\n" + "\n".join(missing)


def test_pending_list_only_names_still_undocumented() -> None:
    objects = list(_public_objects())
    keys = {key for _, key, _ in objects}
    undocumented = {key for _, key, doc in objects if not doc}
    assert PENDING_DOCSTRINGS <= keys, f"not public names: {sorted(PENDING_DOCSTRINGS - keys)}"
    documented = sorted(PENDING_DOCSTRINGS - undocumented)
    assert documented == [], f"documented now, remove from PENDING_DOCSTRINGS: {documented}"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_has_a_docstring(package: str) -> None:
    assert (importlib.import_module(package).__doc__ or "").strip()
