"""Test servers used by the fixtures in tests/conftest.py (everything on 127.0.0.1)."""

from .app import app
from .h3_server import HTTP3Server
from .http_server import HTTPServer
from .loop import BackgroundLoop
from .proxy import HTTPProxy
from .raw import RawHandler, RawServer, RequestReadError
from .responder import Responder
from .socks import PproxyProcess, SocksProxy
from .stall import StallServer

__all__ = [
    "BackgroundLoop",
    "HTTP3Server",
    "HTTPProxy",
    "HTTPServer",
    "PproxyProcess",
    "RawHandler",
    "RawServer",
    "RequestReadError",
    "Responder",
    "SocksProxy",
    "StallServer",
    "app",
]
