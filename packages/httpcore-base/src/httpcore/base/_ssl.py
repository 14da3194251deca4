"""The default TLS configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

__all__ = ["default_ssl_context"]


def default_ssl_context() -> ssl.SSLContext:
    """Return a new client `ssl.SSLContext` that trusts the `certifi` CA bundle.

    A fresh context is built on every call, so callers may adjust it freely.
    """
    # Imported here, not at module level: certifi pulls in importlib.resources (tempfile,
    # shutil, ...) and ssl costs ~9 ms, which plain-HTTP users and cold starts need not pay.
    import ssl

    import certifi

    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    return context
