"""The key secret (``MOMENTS_KEY_SECRET``): its development default, and what makes a
secret weak enough for a worker or the API to warn of it as they start."""

from __future__ import annotations

DEV_SECRET = "moments-dev-only-secret"
SHORTEST_SECRET = 16  # characters: a shorter key secret is warned of


def secret_weakness(secret: str) -> str | None:
    """What makes ``secret`` (``MOMENTS_KEY_SECRET``) weak, for a warning; ``None`` when
    nothing does. It keys the hashes that name customers in Redis and on screens: with
    one anyone can guess, a hash or a ``customer_ref`` gives the customer's id away.

    >>> secret_weakness(DEV_SECRET + chr(10))  # read from a file, with its newline
    'is the development default'
    >>> secret_weakness("x"), secret_weakness("a-long-random-secret-0f3b9c")
    ('is shorter than 16 characters', None)
    >>> secret_weakness(" a-long-random-secret-0f3b9c ")
    'begins or ends with white space (a file read with its newline?)'
    """
    if secret.strip() == DEV_SECRET:
        return "is the development default"
    if len(secret.strip()) < SHORTEST_SECRET:
        return f"is shorter than {SHORTEST_SECRET} characters"
    if secret != secret.strip():
        return "begins or ends with white space (a file read with its newline?)"
    return None
