"""API keys with scopes, stored as SHA-256 hashes.

``MOMENTS_API_KEYS`` holds ``name:scope+scope:sha256hex`` entries separated by ``;``.
A key that web pages use (and so show to every visitor) can be bound to their origins,
``name:scopes:sha256hex@https://shop.example,https://m.shop.example``: it then answers
only requests whose ``Origin`` header names one of them (or, for a page on the API's own
origin, whose browser sends no ``Origin`` on a GET, whose ``Referer`` is on one of
them), so other sites' pages cannot use it from their visitors' browsers. (A client
outside a browser can send any ``Origin``: binding protects the pages' key from other
pages, not from a scraper; the rate limit does that.)

A key can also be bound to the channels its ``recommend`` scope may ask recommendations
for, ``name:recommend=web+outcomes:sha256hex``: asked for another channel (an email, a
text, a call, each of which makes its customer known for a month and counts against their
caps and the offers' budgets), it is refused, and nothing is decided. A ``recommend``
without ``=`` asks for every channel, as before.

>>> ring = KeyRing.parse("web:recommend:" + hash_key("s3cret"))
>>> ring.authorise("s3cret", "recommend").name
'web'
>>> ring.authorise("s3cret", "erase")
Traceback (most recent call last):
...
streams.api.auth.AuthError: key 'web' lacks the scope 'erase'
>>> bound = KeyRing.parse("web:recommend:" + hash_key("s3cret") + "@https://shop.example")
>>> bound.authorise("s3cret", "recommend", "https://shop.example").name
'web'
>>> bound.authorise("s3cret", "recommend", "https://elsewhere.example")
Traceback (most recent call last):
...
streams.api.auth.AuthError: key 'web' is bound to other origins than https://elsewhere.example
>>> page = KeyRing.parse("web:recommend=web:" + hash_key("s3cret")).authorise("s3cret", "recommend")
>>> check_channel(page, "web")
>>> check_channel(page, "email")
Traceback (most recent call last):
...
streams.api.auth.AuthError: key 'web' may ask recommendations for web only, not for email
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from schemas.catalogue import OFFER_CHANNELS
from streams.api.origins import parse_origins
from streams.api.quoting import printable

SCOPES = ("recommend", "outcomes", "ingest", "profile-read", "erase", "export")
# A scope that grants others: ``ingest`` (any event, outcomes included) grants
# ``outcomes`` (offer outcomes only: what a web page's key needs besides ``recommend``).
IMPLIED = {"ingest": frozenset({"outcomes"})}
DEV_KEY = "moments-dev-key"  # all scopes; only when MOMENTS_API_KEYS is not set


_DIGEST = re.compile(r"[0-9a-fA-F]{64}\Z")


def hash_key(key: str) -> str:
    """The SHA-256 of a key as sent: header bytes that are not UTF-8 (which aiohttp
    decodes to surrogates) are hashed as they came, and match no configured key."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class AuthError(Exception):
    """401 when no valid key was given, 403 when the key (``key``) lacks the scope or is
    bound to other origins, or to other channels."""

    def __init__(self, status: int, message: str, key: ApiKey | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.key = key

    @property
    def key_name(self) -> str | None:
        return None if self.key is None else self.key.name


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    scopes: frozenset[str]
    digest: str
    origins: frozenset[str] = frozenset()  # empty: not bound to web pages
    channels: frozenset[str] = frozenset()  # of recommendations; empty: not bound to any


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_digest = {k.digest: k for k in keys}

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """The keys ``MOMENTS_API_KEYS`` holds; :class:`ValueError` for an entry that is
        malformed (an unknown scope or channel included), names a hash another entry names
        already (one would take the other's scopes), or a name another entry gives other
        scopes, channels or origins (keys of one name, as while one is rotated out, share
        its rate limit)."""
        keys: list[ApiKey] = []
        for entry in filter(None, (e.strip() for e in spec.split(";"))):
            # an entry is never quoted back: one written wrongly may hold a key itself
            try:
                name, scopes, rest = entry.split(":", 2)
            except ValueError:
                raise ValueError(
                    f"API key entry {len(keys) + 1} is not name:scopes:sha256[@origin,...]"
                ) from None
            digest, at, bound = rest.partition("@")
            if not name.strip():
                raise ValueError(f"API key entry {len(keys) + 1} has no name")
            wanted, channels = _scopes_and_channels(name, scopes)
            if not _DIGEST.match(digest):
                raise ValueError(f"API key {name!r}: its hash is not 64 hexadecimal digits")
            origins = _bound_origins(name, bound)
            if at and not origins:
                raise ValueError(f"API key {name!r}: '@' names no origins to bind it to")
            granted = wanted.union(*(IMPLIED.get(scope, frozenset()) for scope in wanted))
            key = ApiKey(name, granted, digest.lower(), origins, channels)
            for other in keys:
                # two keys under one name (one being rotated out) share its rate limit:
                # they must grant the same
                same_grant = (other.scopes, other.origins, other.channels) == (
                    key.scopes, key.origins, key.channels,
                )  # fmt: skip
                if other.name == key.name and not same_grant:
                    raise ValueError(f"API key name {name!r} is given twice, with other "
                                     "scopes, channels or origins")  # fmt: skip
                if other.digest == key.digest:
                    raise ValueError(f"API keys {other.name!r} and {name!r} have the same hash")
            keys.append(key)
        if (
            not keys and spec.strip()
        ):  # set, yet no key: every request would be refused, with no word why
            raise ValueError("no key entry (name:scopes:sha256[@origin,...]; ...)")
        return cls(keys)

    def bound_origins(self) -> frozenset[str]:
        """Every origin some key is bound to."""
        return frozenset().union(*(k.origins for k in self._by_digest.values()))

    @classmethod
    def development(cls) -> KeyRing:
        return cls([ApiKey("development", frozenset(SCOPES), hash_key(DEV_KEY))])

    def authorise(
        self,
        presented: str | None,
        scope: str,
        origin: str | None = None,
        referer: str | None = None,
    ) -> ApiKey:
        """The key presented, if it may act in ``scope`` from ``origin`` (the request's
        ``Origin`` header, else its ``Referer``'s origin); raises :class:`AuthError`
        otherwise."""
        if not presented:
            raise AuthError(401, "an API key is required (Authorization: Bearer <key>)")
        digest = hash_key(presented)
        key = next((k for d, k in self._by_digest.items() if hmac.compare_digest(d, digest)), None)
        if key is None:
            raise AuthError(401, "the API key is not valid")
        if scope not in key.scopes:
            raise AuthError(403, f"key {key.name!r} lacks the scope {scope!r}", key)
        if key.origins:
            origin = origin or origin_of(referer)
            if origin is None:
                raise AuthError(
                    403,
                    f"key {key.name!r} is bound to web pages' origins, and the request "
                    "names none (no Origin or Referer)",
                    key,
                )
            if origin not in key.origins:
                raise AuthError(
                    403,
                    f"key {key.name!r} is bound to other origins than {printable(origin)}",
                    key,
                )
        return key


def check_channel(key: ApiKey, channel: str) -> None:
    """Nothing if ``key`` may ask recommendations for ``channel`` (one of
    :data:`~schemas.catalogue.OFFER_CHANNELS`); else :class:`AuthError` 403, naming the
    channels it may ask for."""
    if key.channels and channel not in key.channels:
        allowed = ", ".join(c for c in OFFER_CHANNELS if c in key.channels)
        raise AuthError(
            403,
            f"key {key.name!r} may ask recommendations for {allowed} only, not for "
            f"{printable(channel)}",
            key,
        )


def origin_of(url: str | None) -> str | None:
    """The origin of a URL (a ``Referer``): ``scheme://host[:port]``.

    >>> origin_of("https://shop.example/basket?x=1"), origin_of("not a url")
    ('https://shop.example', None)
    >>> origin_of("http://[::1/x") is None  # not a URL either
    True
    """
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _bound_origins(name: str, text: str) -> frozenset[str]:
    if not text:
        return frozenset()
    try:
        origins = parse_origins(text)
    except ValueError:  # not quoted: a key's entry may hold the key itself
        raise ValueError(f"API key {name!r}: what follows '@' is not an origin "
                         "(scheme://host[:port], comma-separated)") from None  # fmt: skip
    if "*" in origins:
        raise ValueError(f"API key {name!r}: bind it to origins, not to '*'")
    return origins


def _scopes_and_channels(name: str, text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The scopes of an entry's ``scope+scope`` field, and the channels its ``recommend``
    is bound to (``recommend=web,email``; none: every channel). Unknown scopes and
    channels are named back only if they look like names, not like a key pasted there.

    >>> _scopes_and_channels("k", "recommend=web,email+outcomes")[1] == {"web", "email"}
    True
    >>> _scopes_and_channels("k", "recommend+outcomes")[1]
    frozenset()
    """
    scopes: list[str] = []
    channels: frozenset[str] = frozenset()
    bound = False
    for item in text.split("+"):
        scope, equals, listed = item.partition("=")
        scopes.append(scope)
        if not equals:
            continue
        if scope != "recommend":
            shown = f" {scope!r}" if _plain(scope) else ""
            raise ValueError(f"API key {name!r}: only the scope 'recommend' takes channels "
                             f"(=channel,...), not the scope{shown}")  # fmt: skip
        if bound:
            raise ValueError(f"API key {name!r}: 'recommend=' is given twice")
        bound = True
        channels = frozenset(filter(None, (c.strip() for c in listed.split(","))))
        if not channels:
            raise ValueError(f"API key {name!r}: 'recommend=' names no channels")
        _refuse_unknown(name, "channels", channels - set(OFFER_CHANNELS))
    wanted = frozenset(scopes)
    _refuse_unknown(name, "scopes", wanted - set(SCOPES))
    return wanted, channels


def _refuse_unknown(name: str, what: str, unknown: frozenset[str]) -> None:
    if unknown:  # named back only if they look like names, not like a key
        plain = all(_plain(word) for word in unknown)
        named = f" {sorted(unknown)}" if plain else " (not shown: one is not a name)"
        raise ValueError(f"API key {name!r}: unknown {what}{named}")


def _plain(word: str) -> bool:
    return re.fullmatch(r"[a-z-]{1,20}", word) is not None
