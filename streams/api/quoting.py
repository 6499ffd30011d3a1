"""Request text shown back in error messages, made safe to show.

aiohttp decodes header bytes that are not UTF-8 into lone surrogates, which no JSON
body can carry; control characters would garble a log line or a screen. Such
characters are escaped, and a long value is cut short.

>>> printable("https://shop.example")
'https://shop.example'
>>> printable("G\\udcffT\\n")
'G\\\\udcffT\\\\n'
>>> printable("x" * 300)[-4:]
'x...'
"""

from __future__ import annotations

LIMIT = 200  # characters shown of a value at most


def printable(text: str, limit: int = LIMIT) -> str:
    """``text`` with what is not printable escaped (``\\udcff``), at most ``limit``
    characters of it."""
    shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:limit])
    return shown + "..." if len(text) > limit else shown
