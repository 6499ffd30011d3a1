"""``moments check-catalogue``: what analysts run before publishing a catalogue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas import ContactRules, Offer, OfferCatalogue
from streams.catalogue_check import catalogue_report
from streams.cli import main
from streams.settings import Settings

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_the_shipped_catalogue_is_valid_and_summarised(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-catalogue", Settings().catalogue_path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("catalogue 2026-11-demo: 10 offers\n")
    assert "web: 10 offers; fallback: free-shipping;" in out
    assert "default offer" not in out  # no fallback offer limited to segments or purchases


def test_a_default_offer_limited_to_segments_or_purchases_is_warned_of() -> None:
    offers = [Offer(offer_id="picks", title="P", channels=["web"], segments=["new"]),
              Offer(offer_id="loyal", title="L", channels=["web"], min_purchases=3),
              Offer(offer_id="any", title="A", channels=["web"])]  # fmt: skip
    catalogue = OfferCatalogue(version="v", offers=offers, default_offers=["picks", "loyal", "any"])
    _, warnings = catalogue_report(catalogue, NOW)
    limited = [w for w in warnings if w.startswith("default offer")]
    assert [w.split("'")[1] for w in limited] == ["picks", "loyal"]


def test_an_invalid_catalogue_is_refused_with_its_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "offers.toml"
    path.write_text('version = "x"\n[[offers]]\noffer_id = "a"\ntitle = "A"\nchannels = ["fax"]\n')
    assert main(["check-catalogue", str(path)]) == 2
    err = capsys.readouterr().err
    assert "invalid offer catalogue" in err and "$.offers[0].channels[0]" in err


def test_warnings_fail_only_a_strict_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "offers.toml"
    path.write_text('version = "x"\n[[offers]]\noffer_id = "a"\ntitle = "A"\nchannels = ["web"]\n')
    assert main(["check-catalogue", str(path)]) == 0
    assert "warning: web: fallback answers would offer nothing" in capsys.readouterr().out
    assert main(["check-catalogue", "--strict", str(path)]) == 1


def test_campaigns_that_ended_are_warned_of_and_scheduled_ones_listed() -> None:
    news = Offer(offer_id="news", title="News", channels=["web", "email", "sms", "call"])
    ended = Offer(offer_id="autumn", title="Autumn", channels=["web"],
                  available_until=datetime(2026, 11, 30, tzinfo=UTC))  # fmt: skip
    coming = Offer(offer_id="winter", title="Winter", channels=["web"],
                   available_from=datetime(2026, 12, 21, tzinfo=UTC))  # fmt: skip
    catalogue = OfferCatalogue(version="v", offers=[news, ended, coming], default_offers=["news"])
    summary, warnings = catalogue_report(catalogue, NOW)
    assert warnings == ["offer 'autumn' ended 2026-11-30T00:00:00+00:00: never made"]
    assert "offer 'winter' starts 2026-12-21T00:00:00+00:00" in summary
    assert "web: 3 offers; fallback: news; caps 20 a day, 60 a week" in summary


def test_the_contact_caps_are_summarised_and_a_zero_cap_warned_of() -> None:
    news = Offer(offer_id="news", title="News", channels=["web", "sms"])
    rules = ContactRules(daily_caps={"web": 5, "sms": 0}, quiet_hours={"sms": "21:00-08:00"},
                         timezone="Europe/Paris")  # fmt: skip
    catalogue = OfferCatalogue(version="v", offers=[news], default_offers=["news"],
                               contact_policy=rules)  # fmt: skip
    summary, warnings = catalogue_report(catalogue, NOW)
    assert "web: 1 offer; fallback: news; caps 5 a day, 60 a week" in summary
    assert "sms: a contact cap of 0 makes no offers on this channel" in warnings
    assert (
        "sms: 1 offer; fallback: none (needs consent); caps 0 a day, 2 a week; "
        "quiet 21:00-08:00 (Europe/Paris)" in summary
    )


def test_opt_in_channels_are_summarised() -> None:
    news = Offer(offer_id="news", title="News", channels=["web", "email"])
    rules = ContactRules(consent_required=["web", "email"])
    catalogue = OfferCatalogue(version="v", offers=[news], default_offers=["news"],
                               contact_policy=rules)  # fmt: skip
    summary, warnings = catalogue_report(catalogue, NOW)
    assert (
        "web: 1 offer; fallback: none (needs consent); caps 20 a day, 60 a week; "
        "offers need consent granted (opt-in)" in summary
    )
    assert not [w for w in warnings if w.startswith("web")]


def test_outbound_caps_are_summarised_and_a_zero_one_warned_of() -> None:
    news = Offer(offer_id="news", title="News", channels=["web", "email", "sms", "call"])

    def report(**caps: int) -> tuple[list[str], list[str]]:
        rules = ContactRules(**caps)  # type: ignore[arg-type]
        catalogue = OfferCatalogue(version="v", offers=[news], default_offers=["news"],
                                   contact_policy=rules)  # fmt: skip
        return catalogue_report(catalogue, NOW)

    summary, warnings = report(outbound_daily_cap=2, outbound_weekly_cap=4)
    assert "outbound (email, sms, call together): caps 2 a day, 4 a week" in summary
    assert not [w for w in warnings if "outbound" in w]
    summary, _ = report(outbound_weekly_cap=3)
    assert "outbound (email, sms, call together): caps 3 a week" in summary
    _, warnings = report(outbound_daily_cap=0)
    assert "outbound: a cap of 0 makes no offers by email, sms or call" in warnings
    summary, _ = report()
    assert not [line for line in summary if line.startswith("outbound")]
