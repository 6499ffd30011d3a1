"""Which web pages are where a customer cancels their account or subscription: a visit
there raises the save desk (:func:`agents.interventions.interventions_for`). Pure.

A page is one when a segment of its path (in any case, percent-escapes read) is one of
:data:`CANCEL_SEGMENTS`, alone or before ``-``, ``_`` or ``.`` (``cancel-confirm``,
``cancel_subscription``, ``cancel.html``), at the root of the site or right after a
segment naming what a customer cancels to leave (:data:`CANCELLED_THINGS`). The site's
root comes after a language (``/en-gb/cancel``); a full URL is read by its path.
Cancelling one order (``/orders/123/cancel``), a help page about it
(``/help/how-to-cancel-an-order``) or a cancelled flight (``/flights/cancelled``) is not
leaving.

>>> pages = ("/cancel", "/Account/Cancel", "/account/cancel/confirm", "/account/cancel?step=2",
...          "/subscription/cancel-confirm", "/en-gb/cancel-subscription",
...          "https://shop.example/cancel", "/cancel.html", "/account/cancel_subscription",
...          "/billing/cancel", "/account/settings/cancel", "/%61ccount/%63ancel")
>>> [p for p in pages if not cancellation_page(p)]
[]
>>> [cancellation_page(p) for p in ("/orders/123/cancel", "/help/how-to-cancel-an-order",
...                                 "/flights/cancelled", "/products/cancel-proof")]
[False, False, False, False]
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

CANCEL_SEGMENTS = frozenset({"cancel", "cancellation"})
CANCELLED_THINGS = frozenset({"account", "my-account", "subscription", "subscriptions",
                              "membership", "plan", "contract", "billing", "settings"})  # fmt: skip
# a language a site's paths may start with: en, en-gb, pt_br, zh-hant
_LANGUAGE = re.compile(r"[a-z]{2}(?:[-_][a-z0-9]{2,4})?")
_WORD_END = re.compile(r"[-_.]")


def cancellation_page(page: str) -> bool:
    """Whether ``page`` (a path or a URL, with a query or not) is where a customer
    cancels their account or subscription."""
    segments = [s.split(";", 1)[0] for s in unquote(urlsplit(page).path).lower().split("/") if s]
    while segments and _LANGUAGE.fullmatch(segments[0]) and segments[0] not in CANCELLED_THINGS:
        segments = segments[1:]
    return any(
        _WORD_END.split(s, maxsplit=1)[0] in CANCEL_SEGMENTS
        and (i == 0 or segments[i - 1] in CANCELLED_THINGS)
        for i, s in enumerate(segments)
    )
