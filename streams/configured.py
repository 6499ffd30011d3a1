"""The parts of an engine that settings configure and both processes build: the feature
store, the offer policy and the interventions' hold-out group. Without Faust, so that
the API and the commands that need them do not load the worker's framework."""

from __future__ import annotations

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.context import value_scale
from agents.control_group import ControlGroup
from agents.learned_policy import LearnedOfferPolicy, ModelHolder
from agents.offer_policy import OfferPolicy
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import FeatureStore, SegmentThresholds, StoreConfig
from feature_store.records import Observer
from streams.settings import Settings


def intervention_holdout(settings: Settings) -> ControlGroup:
    """The interventions' hold-out group: its own salt, so that it is drawn apart from
    the offers' control group and neither experiment disturbs the other."""
    return ControlGroup(f"{settings.control_salt}:interventions",
                        settings.intervention_control_percent)  # fmt: skip


def build_store(
    settings: Settings, redis_url: str | None = None, observe: Observer | None = None
) -> FeatureStore:
    """The feature store as configured (optionally on another Redis)."""
    return FeatureStore.from_url(
        redis_url or settings.redis_url,
        StoreConfig(
            secret=settings.key_secret.encode(),
            prefix=settings.redis_prefix,
            ttl_s=settings.store_ttl_days * 86400,
            contact_only_ttl_s=settings.contact_only_ttl_days * 86400,
            stranger_ttl_s=settings.stranger_ttl_days * 86400,
            dedupe_horizon_s=settings.dedupe_horizon_days * 86400,
            tombstone_ttl_s=settings.tombstone_days * 86400,
            thresholds=SegmentThresholds(
                high_value=settings.high_value, good_experience=settings.good_experience
            ),
            half_life_days=settings.experience_half_life_days,
            money=settings.money,
            future_skew_s=settings.max_future_skew_s,
        ),
        observe=observe,
        cluster=settings.redis_cluster,
        ssl_ca_certs=settings.redis_ssl_ca_certs or None,
        timeout_s=settings.redis_timeout_s,
    )


def build_policy(
    settings: Settings, catalogue: CatalogueHolder, holder: ModelHolder
) -> OfferPolicy:
    """The offer policy as configured: ``learned`` (default) or ``rules``."""
    contact = ContactPolicy(ControlGroup(settings.control_salt, settings.control_percent))
    if settings.policy == "rules":
        return RuleBasedOfferPolicy(catalogue, contact)
    return LearnedOfferPolicy(catalogue, contact, holder, value_scale(settings.high_value))
