"""The per-offer series (``moments_offers_made_total``, ``moments_offer_outcomes_total``)
of an offer gone from the catalogue go once it has been out longer than its decisions can
bring outcomes (8 days: contexts are kept 7). They stayed for as long as the process ran:
with 20 campaign offers rotated daily, /metrics was 1.6 MB after 90 days, written on the
event loop at every scrape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas import NextBestOffer, Offer, OfferCatalogue
from schemas.decisions import OfferScore
from streams.metrics import Metrics
from streams.offer_series import OFFER_SERIES_KEPT_S

DAY0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
KEPT = timedelta(seconds=OFFER_SERIES_KEPT_S)
PER_OFFER = ("moments_offers_made_total{", "moments_offer_outcomes_total{")


def catalogue(*offers: str) -> OfferCatalogue:
    return OfferCatalogue(
        version="-".join(offers),
        offers=[Offer(offer_id=o, title=o, channels=["web", "email"]) for o in offers],
    )


def made_and_answered(metrics: Metrics, *offers: str) -> None:
    """Each offer shown on web and email, and given an outcome on each."""
    for channel in ("web", "email"):
        metrics.decision_sent(
            NextBestOffer(
                decision_id="d",
                customer_id="c",
                ts=DAY0,
                channel=channel,
                trigger_event_id=None,
                offers=[OfferScore(offer_id=o, score=1.0, propensity=1.0) for o in offers],
            )
        )
        for offer in offers:
            metrics.offer_outcome(offer, channel, "clicked")


def offers_with_series(metrics: Metrics, at: datetime) -> set[str]:
    lines = metrics.exposition(at).decode().splitlines()
    return {line.split('offer="')[1].split('"')[0] for line in lines if line.startswith(PER_OFFER)}


def test_an_offers_series_go_once_it_has_been_out_longer_than_outcomes_come() -> None:
    metrics = Metrics()
    metrics.catalogue_in_use(catalogue("spring", "summer"), now=DAY0)
    made_and_answered(metrics, "spring", "summer")
    out = DAY0 + timedelta(days=1)
    metrics.catalogue_in_use(catalogue("summer", "autumn"), "ok", now=out)  # spring out
    made_and_answered(metrics, "summer", "autumn")
    assert offers_with_series(metrics, out + KEPT - timedelta(seconds=1)) == {
        "spring", "summer", "autumn"}  # fmt: skip
    assert offers_with_series(metrics, out + KEPT) == {"summer", "autumn"}

    lines = metrics.exposition(out + KEPT).decode().splitlines()
    made = [line for line in lines if line.startswith(PER_OFFER[0])]
    answered = [line for line in lines if line.startswith(PER_OFFER[1])]
    assert len(made) == len(answered) == 4  # two offers on two channels, left whole
    assert 'moments_offers_made_total{channel="web",offer="summer"} 2.0' in made


def test_an_offer_back_in_the_catalogue_keeps_its_series() -> None:
    metrics = Metrics()
    metrics.catalogue_in_use(catalogue("spring"), now=DAY0)
    made_and_answered(metrics, "spring")
    metrics.catalogue_in_use(catalogue("summer"), "ok", now=DAY0)
    back = DAY0 + KEPT - timedelta(hours=1)
    metrics.catalogue_in_use(catalogue("spring", "summer"), "ok", now=back)
    assert offers_with_series(metrics, DAY0 + 2 * KEPT) == {"spring"}
    metrics.catalogue_in_use(catalogue("summer"), "ok", now=DAY0 + 2 * KEPT)  # out again:
    assert offers_with_series(metrics, DAY0 + 3 * KEPT - timedelta(hours=1)) == {"spring"}
    assert offers_with_series(metrics, DAY0 + 3 * KEPT) == set()  # the clock starts anew


def test_a_daily_rotation_of_campaigns_keeps_metrics_bounded() -> None:
    """20 new offers a day, yesterday's gone: the series of 9 days' offers at most."""
    metrics, sizes = Metrics(), []
    for day in range(40):
        now = DAY0 + timedelta(days=day)
        offers = [f"campaign-{day}-{i}" for i in range(20)]
        metrics.catalogue_in_use(catalogue(*offers), "ok", now=now)
        made_and_answered(metrics, *offers)
        sizes.append(len(offers_with_series(metrics, now)))
    assert max(sizes) == sizes[-1] == 20 * 9
    assert len(metrics.exposition(DAY0 + timedelta(days=80))) < 40_000
