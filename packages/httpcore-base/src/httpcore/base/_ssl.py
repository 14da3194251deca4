"""The default TLS configuration."""

from __future__ import annotations

import ssl

import certifi

__all__ = ["default_ssl_context"]


def default_ssl_context() -> ssl.SSLContext:
    """Return a new client `ssl.SSLContext` that trusts the `certifi` CA bundle.

    A fresh context is built on every call, so callers may adjust it freely.
    """
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    return context
