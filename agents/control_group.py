"""The deterministic hold-out control group: a salted hash of the customer id.

>>> group = ControlGroup(salt="s", percent=50.0)
>>> group.contains("cust-1") == group.contains("cust-1")
True
>>> ControlGroup(salt="s", percent=0.0).contains("cust-1")
False
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ControlGroup:
    salt: str
    percent: float = 5.0

    def contains(self, customer_id: str) -> bool:
        digest = hashlib.sha256(f"{self.salt}:{customer_id}".encode()).digest()
        bucket = int.from_bytes(digest[:8], "big") / 2**64
        return bucket * 100 < self.percent
