"""API keys with scopes, stored as SHA-256 hashes.

``MOMENTS_API_KEYS`` holds ``name:scope+scope:sha256hex`` entries separated by ``;``.

>>> ring = KeyRing.parse("web:recommend:" + hash_key("s3cret"))
>>> ring.authorise("s3cret", "recommend").name
'web'
>>> ring.authorise("s3cret", "erase")
Traceback (most recent call last):
...
streams.api.auth.AuthError: key 'web' lacks the scope 'erase'
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

SCOPES = ("recommend", "ingest", "profile-read", "erase")
DEV_KEY = "moments-dev-key"  # all scopes; only when MOMENTS_API_KEYS is not set


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AuthError(Exception):
    """401 when no valid key was given, 403 when the key lacks the scope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    scopes: frozenset[str]
    digest: str


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_digest = {k.digest: k for k in keys}

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        keys = []
        for entry in filter(None, (e.strip() for e in spec.split(";"))):
            try:
                name, scopes, digest = entry.split(":")
            except ValueError:
                raise ValueError(f"API key entry {entry!r} is not name:scopes:sha256") from None
            wanted = frozenset(scopes.split("+"))
            unknown = wanted - set(SCOPES)
            if unknown or len(digest) != 64:
                raise ValueError(f"API key {name!r}: unknown scopes {sorted(unknown)} or bad hash")
            keys.append(ApiKey(name, wanted, digest.lower()))
        return cls(keys)

    @classmethod
    def development(cls) -> KeyRing:
        return cls([ApiKey("development", frozenset(SCOPES), hash_key(DEV_KEY))])

    def authorise(self, presented: str | None, scope: str) -> ApiKey:
        if not presented:
            raise AuthError(401, "an API key is required (Authorization: Bearer <key>)")
        digest = hash_key(presented)
        key = next((k for d, k in self._by_digest.items() if hmac.compare_digest(d, digest)), None)
        if key is None:
            raise AuthError(401, "the API key is not valid")
        if scope not in key.scopes:
            raise AuthError(403, f"key {key.name!r} lacks the scope {scope!r}")
        return key
