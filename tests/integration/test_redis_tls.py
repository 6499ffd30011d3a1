"""The feature store on a Redis that only speaks TLS (``rediss://``) with a private CA:
scripts, decision reads, profile reads and erasure all go over TLS."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feature_store import FeatureStore, StoreConfig
from schemas import WebClick
from streams.services import LocalRedis, free_port
from tests.integration.certificates import PrivateCA

pytestmark = pytest.mark.integration


async def test_the_store_works_over_tls_with_a_private_ca(tmp_path: Path) -> None:
    authority = PrivateCA.create(tmp_path / "ca")
    ca, server = authority.cert, authority.issue("redis", ip="127.0.0.1")
    tls_port = free_port()
    redis = LocalRedis(tmp_path / "redis", appendonly=False)
    redis.extra_args = [
        "--tls-port", str(tls_port), "--tls-cert-file", str(server.cert),
        "--tls-key-file", str(server.key), "--tls-ca-cert-file", str(ca),
        "--tls-auth-clients", "no",
    ]  # fmt: skip
    redis.start()
    url = f"rediss://127.0.0.1:{tls_port}/0"
    store = FeatureStore.from_url(url, StoreConfig(b"tls-secret", "tls"), ssl_ca_certs=str(ca))
    untrusting = FeatureStore.from_url(url, StoreConfig(b"tls-secret", "tls"))
    try:
        click = WebClick(event_id="e1", customer_id="c1", ts=datetime.now(UTC), page="/",
                         category="books")  # fmt: skip
        assert [int(s) for s in await store.apply([click])] == [1]
        ((erased, features),) = await store.read_for_decisions(["c1"])
        assert not erased and features is not None and features.events == 1
        profile = await store.read("c1")
        assert profile is not None and profile.recent[0].event_id == "e1"
        receipt = await store.erase("c1")
        assert receipt.blocked and receipt.keys_removed >= 3
        assert await store.read_for_decisions(["c1"]) == [(True, None)]
        assert await store.erased(["c1", "c2"]) == [True, False]
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.read_for_decisions(["c1"])  # the system CAs do not know ours
    finally:
        await store.close()
        await untrusting.close()
        redis.stop()
