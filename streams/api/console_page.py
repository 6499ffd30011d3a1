"""The contact-centre console page, read once, with the headers it is served with.

The page holds a key that can read any customer's profile (in the browser's storage), so
it runs nothing but its own inline script and style, named by their hashes in its
Content-Security-Policy; it talks only to its own origin and cannot be framed.

>>> page = ConsolePage.load()
>>> "script-src 'sha256-" in page.headers["Content-Security-Policy"]
True
>>> page.headers["X-Frame-Options"], page.headers["X-Content-Type-Options"]
('DENY', 'nosniff')
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

CONSOLE_HTML = Path(__file__).with_name("console.html")


def _hashes(html: str, tag: str) -> str:
    """The CSP sources of ``html``'s inline ``<tag>`` elements: their SHA-256 hashes."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    digests = (hashlib.sha256(body.encode()).digest() for body in bodies)
    return " ".join(f"'sha256-{base64.b64encode(d).decode()}'" for d in digests) or "'none'"


@dataclass(frozen=True, slots=True)
class ConsolePage:
    html: str
    headers: dict[str, str]

    @classmethod
    def load(cls, path: Path = CONSOLE_HTML) -> ConsolePage:
        html = path.read_text()
        policy = "; ".join([
            "default-src 'none'",
            f"script-src {_hashes(html, 'script')}",
            f"style-src {_hashes(html, 'style')}",
            "img-src data:",  # its favicon, written into the page
            "connect-src 'self'",  # the alert stream, and the fetch that says why it failed
            "base-uri 'none'",
            "form-action 'none'",  # the Connect form is handled by the script
            "frame-ancestors 'none'",
        ])  # fmt: skip
        headers = {
            "Content-Security-Policy": policy,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache",
        }
        return cls(html, headers)
