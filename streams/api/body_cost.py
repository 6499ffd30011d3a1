"""What a request body costs its key's rate, besides the request's own token, and how far
into debt a key may go for one.

Splitting a list takes some 0.26 µs an item: a 1 MiB body of 340,000 empty items,
refused as too many, cost 90 ms of the event loop for one token, and a key web pages
show could slow every other key's answers to seconds at 15% of its rate. So a body
takes one token per 100 items and one per 64 KiB (inflated) past the first, whichever
is more.

>>> body_cost(2_000, 1), body_cost(150_000, 500), body_cost(2**20, 340_000)
(0, 4, 3399)

A key goes into debt for a body down to what the costliest body the API takes costs
(its bytes as items of two bytes each, ``0,``), and never less than a burst: a body is
charged in full, and a wave of them sent together pays for each one split.

>>> debt_floor(burst=400, max_body_bytes=2**20), debt_floor(burst=400, max_body_bytes=1000)
(5242, 400)
"""

from __future__ import annotations

ITEMS_PER_TOKEN = 100
BYTES_PER_TOKEN = 64 * 1024
SMALLEST_ITEM_BYTES = 2  # "0," in a list


def body_cost(size: int, items: int) -> int:
    """The tokens a body of ``size`` bytes and ``items`` items takes past its request's."""
    return max(-(-items // ITEMS_PER_TOKEN), -(-size // BYTES_PER_TOKEN), 1) - 1


def debt_floor(burst: int, max_body_bytes: int) -> int:
    """How many tokens below empty a key's bucket may go: the cost of the costliest body
    of at most ``max_body_bytes`` (``MOMENTS_API_MAX_BODY_BYTES``), or ``burst``."""
    most_items = -(-max_body_bytes // SMALLEST_ITEM_BYTES)
    return max(burst, body_cost(max_body_bytes, most_items))
