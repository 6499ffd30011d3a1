"""A Redis connection whose commands are packed by hiredis (C) instead of Python.

The bytes on the wire are the same; packing a feature-store call (a script with a
dozen arguments) costs a few microseconds instead of over ten.

>>> PackedConnection().pack_command("SCRIPT LOAD", "return 1")
[b'*3\\r\\n$6\\r\\nSCRIPT\\r\\n$4\\r\\nLOAD\\r\\n$8\\r\\nreturn 1\\r\\n']
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError


class PackedConnection(Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str) and " " in name:  # e.g. "SCRIPT LOAD": separate words
            args = (*name.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise DataError(str(exc)) from exc
