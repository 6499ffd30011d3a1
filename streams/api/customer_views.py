"""A customer's profile (``GET``), everything kept about them (``GET .../export``) and
their erasure (``DELETE``), at ``/v1/customers/{customer_id}``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agents.risk_features import risk_features
from feature_store import CustomerFeatures, ErasureUnknown
from feature_store.features import stored_time
from schemas import CustomerErasure, encode_erasure
from streams import topics
from streams.api.customer_export import (
    KEPT_IN_TOPICS,
    decoded_decisions,
    export_body,
    kept_in_topics,
)
from streams.api.customer_profile import customer_profile
from streams.api.errors import ApiError, json_response, kafka_unavailable
from streams.api.request_checks import api_of, authorise, customer_id_of
from streams.api.server import Api


async def get_customer(request: web.Request) -> web.Response:
    authorise(request, "profile-read")
    api = api_of(request)
    customer_id = customer_id_of(request)
    profile = await _held_profile(api, customer_id)
    if profile is None:
        raise ApiError(404, "not_found", "Moments holds no profile for this customer")
    return json_response(profile)


async def export_customer(request: web.Request) -> web.Response:
    """The customer's access request: everything kept about them (scope ``export``)."""
    authorise(request, "export")
    api = api_of(request)
    customer_id = customer_id_of(request)
    record = await api.store.export(customer_id)
    if not record.holds_anything:
        raise ApiError(404, "not_found", "Moments holds nothing about this customer")
    erased = record.erased
    profile = None if erased else await _held_profile(api, customer_id)
    topic_names = {name: api.settings.topic(name) for name in KEPT_IN_TOPICS}
    return json_response(export_body(customer_id, record, profile, datetime.now(UTC), topic_names))


def _first_erased(at_ms: int, now: datetime) -> datetime:
    """When the receipt says the customer was first erased: the tombstone's time, or now
    where it holds none a date can (the erasure script writes such a tombstone over, so
    this is a guard: the keys are gone, and the record must still be published)."""
    try:
        return stored_time(at_ms)
    except ValueError:
        return now


def _home_timezone(api: Api) -> str:
    """The catalogue's timezone: whose days the contact counts of a customer whose own
    timezone is not known count, as the decisions count them."""
    return api.catalogue.current.contact_policy.timezone


async def _held_profile(api: Api, customer_id: str) -> dict[str, Any] | None:
    """The customer's profile, or ``None`` when Moments holds none: no touchpoint applied
    and no recent decision kept, or erased. A customer with decisions but no touchpoint
    yet (a web visitor's recommendations, a hold-out customer's among them) has one: the
    features of a customer Moments knows nothing else of, as their decisions used, and
    those decisions.

    What Redis holds in a form that cannot be read (a key of another type, a count that
    is no number, a time no date can hold, a decision's context cut short: a tool's, a
    bug's) is named in ``unreadable``, and the rest is answered: features that cannot
    be read as those of a customer Moments knows nothing else of, and the decisions that
    can be."""
    unreadable: list[str] = []
    faults: dict[str, Exception] = {}
    ((erased, features),) = await api.store.read_views(
        [customer_id], faults=faults, home_timezone=_home_timezone(api)
    )
    if faults:  # told apart from an erasure: the tombstone is read on its own
        unreadable.append("features")
        erased = (await api.store.erased([customer_id]))[0]
    if erased:
        return None
    failed: list[Exception] = []
    decisions, unread = decoded_decisions(
        await api.store.decisions.recent(customer_id, faults=failed)
    )
    if failed or unread:
        unreadable.append("recent_decisions")
    if features is None:
        if not decisions and not unreadable:
            return None
        features = CustomerFeatures()
    return _profile(api, customer_id, features, decisions) | {"unreadable": unreadable}


def _profile(
    api: Api, customer_id: str, features: CustomerFeatures, decisions: list[Any]
) -> dict[str, Any]:
    model = api.risk.model
    risk = model.predict_one(risk_features(features, datetime.now(UTC)))
    control = api.policy.contact_policy.control_group.contains(customer_id)
    currency = api.settings.money.currency
    return customer_profile(
        customer_id, features, decisions, risk, api.risk.version, model.reason, control, currency
    )


async def _erasure_unknown(api: Api, customer_id: str, subject: str) -> ApiError:
    """The answer to an erasure whose script Redis did not answer in time: it may have
    run (or run once Redis answers), so it errs on the side of erasing. The customer's
    alerts go, and the erasure record is written all the same (``keys_removed`` 0, no
    withdrawals: not known), so that a rebuild keeps them erased though the client never
    retries; a retry completes the erasure and writes the record of its receipt."""
    api.alerts.forget(customer_id)
    record = CustomerErasure(customer_id=customer_id, subject=subject, ts=datetime.now(UTC))
    topic = api.settings.topic(topics.CUSTOMER_ERASURES)
    recorded = "its erasure record was written"
    try:
        async with asyncio.timeout(api.settings.api_kafka_timeout_s):
            sent = await api.producer.send(topic, encode_erasure(record), key=customer_id.encode())
            await sent
        api.kafka.sent(ok=True)
    except Exception:  # the message says so; the retry writes it
        api.kafka.sent(ok=False)
        recorded = "Kafka did not acknowledge its erasure record either"
    return ApiError(503, "store_unavailable",
                    "the feature store did not answer in time: the erasure may have been "
                    f"applied ({recorded}); retry the request to complete it",
                    headers={"Retry-After": "1"})  # fmt: skip


async def delete_customer(request: web.Request) -> web.Response:
    authorise(request, "erase")
    api = api_of(request)
    customer_id = customer_id_of(request)
    settings = api.settings
    try:
        receipt = await api.store.erase(customer_id, replicas=settings.erasure_replicas,
                                        within_ms=settings.erasure_replica_wait_ms)  # fmt: skip
    except ErasureUnknown as exc:  # it may have run, or run once Redis answers
        raise await _erasure_unknown(api, customer_id, exc.subject) from exc
    api.alerts.forget(customer_id)  # other API processes: from the erasure record
    # the record's time starts the block when the topics are replayed (as this request
    # did); the receipt tells when the customer was first erased, and everything erasing
    # them removed, a request that was told to try again included
    now = datetime.now(UTC)
    first = receipt.erased_at_ms
    erased_at = now if first is None else _first_erased(first, now)
    record = CustomerErasure(customer_id=customer_id, subject=receipt.subject, ts=now,
                             keys_removed=receipt.keys_removed,
                             withdrawals=tuple(receipt.withdrawals_kept))  # fmt: skip
    topic = api.settings.topic(topics.CUSTOMER_ERASURES)
    try:
        async with asyncio.timeout(api.settings.api_kafka_timeout_s):
            meta = await (await api.producer.send(topic, encode_erasure(record),
                                                  key=customer_id.encode()))  # fmt: skip
    except Exception as exc:  # failed, or not acknowledged in time (a retry writes again)
        api.kafka.sent(ok=False)
        raise kafka_unavailable("erased from Redis, but Kafka did not acknowledge the "
                                "erasure record (it may still be written); retry the "
                                "request (a second record of it is harmless)") from exc  # fmt: skip
    api.kafka.sent(ok=True)
    if (receipt.replicas_confirmed or 0) < settings.erasure_replicas:  # after the record:
        # a rebuild replays the erasure, though the client may never retry
        raise ApiError(503, "replicas_unconfirmed",
                       f"erased on the Redis primary, but {receipt.replicas_confirmed} of the "
                       f"{settings.erasure_replicas} replicas asked for confirmed it within "
                       f"{settings.erasure_replica_wait_ms} ms; retry the request",
                       [{"retry_after_s": 1}], headers={"Retry-After": "1"})  # fmt: skip
    confirmed = {} if receipt.replicas_confirmed is None else {
        "replicas_confirmed": receipt.replicas_confirmed}  # fmt: skip
    return json_response({
        "subject": receipt.subject,
        "erased_at": erased_at,
        "keys_removed": receipt.keys_removed,
        "erased": receipt.kinds,
        "blocked": receipt.blocked,
        # honoured still: answers for the erased id suppress these channels
        "withdrawals_kept": receipt.withdrawals_kept,
        "erasure_record": {"topic": topic, "partition": meta.partition, "offset": meta.offset},
        # what the erasure does not reach: the topics keep their records until retention
        "kept_in_topics": kept_in_topics(
            {name: api.settings.topic(name) for name in KEPT_IN_TOPICS}),
        **confirmed,
    })  # fmt: skip
