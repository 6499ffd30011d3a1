"""The local broker's KRaft cluster id never looks like an option to kafka-storage."""

from __future__ import annotations

import base64

from streams.services.local_kafka import kafka_cluster_id


def test_cluster_ids_are_uuids_that_never_start_with_a_dash() -> None:
    ids = [kafka_cluster_id() for _ in range(2000)]  # one uuid in 64 starts with "-"
    assert not any(found.startswith("-") for found in ids)
    assert len(set(ids)) == len(ids)
    assert all(len(base64.urlsafe_b64decode(found + "==")) == 16 for found in ids)
