"""Test servers used by the fixtures in tests/conftest.py (everything on 127.0.0.1)."""

from .app import app
from .h3_server import HTTP3Server
from .http_server import HTTPServer
from .loop import BackgroundLoop
from .proxy import HTTPProxy
from .raw import RawHandler, RawServer, RequestReadError
from .socks import PproxyProcess, SocksProxy

__all__ = [
    "BackgroundLoop",
    "HTTP3Server",
    "HTTPProxy",
    "HTTPServer",
    "PproxyProcess",
    "RawHandler",
    "RawServer",
    "RequestReadError",
    "SocksProxy",
    "app",
]
