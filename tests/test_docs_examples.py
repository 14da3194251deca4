"""Every ```python example of the documentation (docs/*.md and README.md) runs, offline.

Each block runs as its own script in a fresh interpreter (so an example's logging setup, event
loop or SSL context cache cannot leak into another), with the internet URLs of the docs
rewritten to the local test servers and proxies (URLS below). A prelude makes the default SSL
context trust the test CA instead of certifi's bundle, so examples need no test-only arguments.

Rules for the docs (checked here):
- an example uses only the placeholder hosts of URLS; after rewriting no `example.com` is left;
- an example in docs/ proves it did something: it contains an `assert`;
- a block that must not run is preceded by the line `<!-- no-run -->` (keep them rare).
Async examples carry their own `asyncio.run(...)` / `trio.run(...)`, so they run on the event
loop they say.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import trustme
from h3helpers import h3_server_shared
from servers import HTTP3Server, HTTPProxy, HTTPServer, SocksProxy

ROOT = Path(__file__).resolve().parent.parent
NO_RUN = "<!-- no-run -->"
CONTRIBUTOR_NOTES = ("LAYOUT.md", "CORE.md")
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)

PRELUDE = """\
import certifi
certifi.where = lambda: {bundle!r}  # trust the test CA (see tests/test_docs_examples.py)
"""


def _blocks(path: Path) -> List[Tuple[int, str]]:
    """(line number, code) of each runnable ```python block of `path`."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if before == NO_RUN:
            continue
        blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return blocks


def _all_blocks() -> List[Tuple[str, int, str]]:
    # LAYOUT.md and CORE.md are contributor notes whose blocks sketch internal code.
    files = [p for p in sorted((ROOT / "docs").glob("*.md")) if p.name not in CONTRIBUTOR_NOTES]
    files.append(ROOT / "README.md")
    return [
        (str(path.relative_to(ROOT)), line, code) for path in files for line, code in _blocks(path)
    ]


BLOCKS = _all_blocks()
h3_server_shared = h3_server_shared  # the fixture, from h3helpers


def test_few_examples_are_skipped() -> None:
    skipped = [
        path.name
        for path in sorted((ROOT / "docs").glob("*.md"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() == NO_RUN
    ]
    assert len(skipped) <= 3, f"keep <!-- no-run --> blocks rare: {skipped}"


def test_the_docs_have_examples() -> None:
    assert len([b for b in BLOCKS if b[0].startswith("docs/")]) >= 30


@pytest.fixture(scope="module")
def urls(
    server: HTTPServer,
    tls_server: HTTPServer,
    http_proxy: HTTPProxy,
    http_proxy_auth: HTTPProxy,
    https_proxy: HTTPProxy,
    socks5_proxy: SocksProxy,
    socks5_auth_proxy: SocksProxy,
    socks4_proxy: SocksProxy,
    h3_server_shared: List[HTTP3Server],
) -> Dict[str, str]:
    """Placeholder of the docs -> the local server that stands in for it (longest first)."""
    socks5 = f"{socks5_proxy.host}:{socks5_proxy.port}"
    socks4 = f"{socks4_proxy.host}:{socks4_proxy.port}"
    return {
        "https://proxy.example.com:3129": https_proxy.url,
        "http://auth-proxy.example.com:3128": http_proxy_auth.url,
        "http://proxy.example.com:3128": http_proxy.url,
        "socks5://auth-proxy.example.com:1080": socks5_auth_proxy.url,
        "socks5://proxy.example.com:1080": f"socks5://{socks5}",
        "socks5h://proxy.example.com:1080": f"socks5h://{socks5}",
        "socks4a://proxy.example.com:1080": f"socks4a://{socks4}",
        "socks4://proxy.example.com:1080": f"socks4://{socks4}",
        "https://h3.example.com": h3_server_shared[0].url,  # hypercorn with QUIC (docs/http3.md)
        "https://93.184.215.14": tls_server.url,  # an IP literal (the sni_hostname example)
        "https://www.example.com": tls_server.localhost_url,
        "https://example.com": tls_server.localhost_url,
        "http://www.example.com": server.url,
        "http://example.com": server.url,
        "www.example.com": "localhost",  # a bare host name (Host header, SNI)
    }


@pytest.fixture(scope="module")
def ca_bundle(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("docs") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.mark.parametrize(("source", "line", "code"), BLOCKS, ids=[f"{s}:{n}" for s, n, _ in BLOCKS])
def test_example_runs(
    source: str,
    line: int,
    code: str,
    urls: Dict[str, str],
    ca_bundle: str,
    tmp_path: Path,
) -> None:
    for placeholder, local in urls.items():
        code = code.replace(placeholder, local)
    assert "example.com" not in code, f"{source}:{line} uses a host the tests do not map"
    if source.startswith("docs/"):
        assert "assert " in code, f"{source}:{line}: an example must check what it did"
    script = tmp_path / "example.py"
    script.write_text(PRELUDE.format(bundle=ca_bundle) + textwrap.dedent(code), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, (
        f"{source}:{line} failed:\n{code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
