"""Reading the offer catalogue again when its file changes."""

from __future__ import annotations

import itertools
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.moments import request_moment
from agents.offer_rules import RuleBasedOfferPolicy
from schemas import OfferCatalogue, load_catalogue
from streams.catalogue_reload import APPLIED, REFUSED, CatalogueReloader
from streams.metrics import Metrics
from tests.unit.logged import said_by

_clock = itertools.count(1_700_000_000)


def catalogue_toml(version: str, *offer_ids: str) -> str:
    offers = "".join(
        f'[[offers]]\noffer_id = "{o}"\ntitle = "{o.title()}"\nchannels = ["web"]\n\n'
        for o in offer_ids
    )
    return f'version = "{version}"\n\n{offers}'


def write(path: Path, text: str) -> None:
    """Write and give the file a new modification time, as a later edit would have."""
    path.write_text(text)
    second = next(_clock)
    os.utime(path, (second, second))


def catalogue_of(version: str, *offer_ids: str) -> OfferCatalogue:
    return msgspec.toml.decode(catalogue_toml(version, *offer_ids), type=OfferCatalogue)


def settled(reloader: CatalogueReloader) -> str | None:
    """What the reloader makes of the file over two checks in a row (the timer's): a
    change is taken up once it reads the same at both."""
    return reloader.check() or reloader.check()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, catalogue: OfferCatalogue, outcome: str) -> None:
        self.calls.append((catalogue.version, outcome))


Setup = tuple[Path, CatalogueHolder, CatalogueReloader, "Recorder"]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    path = tmp_path / "offers.toml"
    write(path, catalogue_toml("1", "shop", "newsletter"))
    holder = CatalogueHolder(load_catalogue(path))
    recorder = Recorder()
    return path, holder, CatalogueReloader(path, holder, recorder), recorder


def test_an_unchanged_file_is_not_read_again(setup: Setup) -> None:
    _, holder, reloader, recorder = setup
    before = holder.current
    assert settled(reloader) is None
    assert holder.current is before and recorder.calls == []


def test_a_new_valid_catalogue_replaces_the_one_in_use(setup: Setup) -> None:
    path, holder, reloader, recorder = setup
    write(path, catalogue_toml("2", "shop", "winter-sale"))
    assert settled(reloader) == APPLIED
    assert holder.current.version == "2"
    assert [o.offer_id for o in holder.current.offers] == ["shop", "winter-sale"]
    assert recorder.calls == [("2", APPLIED)]
    assert settled(reloader) is None  # read once


def test_an_invalid_catalogue_is_refused_once_and_the_one_in_use_stays(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    path, holder, reloader, recorder = setup
    write(path, catalogue_toml("2", "shop", "shop"))  # the same offer twice
    with caplog.at_level(logging.WARNING, "streams.catalogue_reload"):
        assert settled(reloader) == REFUSED
        assert settled(reloader) is None  # the same bad file: said once
    assert holder.current.version == "1"
    assert recorder.calls == [("1", REFUSED)]
    [warning] = said_by(caplog, "streams.catalogue_reload")
    assert "duplicate offer_id 'shop'" in warning.getMessage()
    assert "still using version '1'" in warning.getMessage()

    write(path, catalogue_toml("3", "shop"))  # fixed
    assert settled(reloader) == APPLIED
    assert holder.current.version == "3"


def test_a_half_written_file_is_refused_and_the_complete_one_applied(setup: Setup) -> None:
    path, holder, reloader, _ = setup
    complete = catalogue_toml("2", "shop", "winter-sale")
    write(path, complete[: len(complete) // 2 + 7])
    assert settled(reloader) == REFUSED
    write(path, complete)
    assert settled(reloader) == APPLIED
    assert holder.current.version == "2"


def test_a_change_keeping_size_and_modification_time_is_seen(setup: Setup) -> None:
    """File systems stamp times coarsely: two quick edits of equal length can leave
    the inode, size and modification time as they were."""
    path, holder, reloader, _ = setup
    before = os.stat(path)
    path.write_text(catalogue_toml("2", "shop", "newsletter"))  # the same length
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    assert settled(reloader) == APPLIED
    assert holder.current.version == "2"


def test_a_touched_file_with_the_same_catalogue_changes_nothing(setup: Setup) -> None:
    path, holder, reloader, recorder = setup
    before = holder.current
    write(path, path.read_text())
    assert settled(reloader) is None
    assert holder.current is before and recorder.calls == []


def test_a_missing_file_is_refused_once_and_its_return_applied(setup: Setup) -> None:
    path, holder, reloader, recorder = setup
    path.unlink()
    assert settled(reloader) == REFUSED
    assert settled(reloader) is None
    assert holder.current.version == "1"
    write(path, catalogue_toml("2", "shop"))
    assert settled(reloader) == APPLIED
    assert recorder.calls == [("1", REFUSED), ("2", APPLIED)]


def test_a_configmap_style_update_is_seen_through_the_symlinks(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as ``offers.toml -> ..data/offers.toml`` and
    updates it by pointing ``..data`` at a new directory."""
    for name, version in (("v1", "1"), ("v2", "2")):
        (tmp_path / name).mkdir()
        write(tmp_path / name / "offers.toml", catalogue_toml(version, "shop"))
    (tmp_path / "..data").symlink_to("v1")
    path = tmp_path / "offers.toml"
    path.symlink_to("..data/offers.toml")
    holder = CatalogueHolder(load_catalogue(path))
    reloader = CatalogueReloader(path, holder)

    (tmp_path / "..data_new").symlink_to("v2")
    os.replace(tmp_path / "..data_new", tmp_path / "..data")
    assert settled(reloader) == APPLIED
    assert holder.current.version == "2"


def test_the_next_decision_uses_the_new_catalogue(setup: Setup) -> None:
    path, holder, reloader, _ = setup
    policy = RuleBasedOfferPolicy(holder, ContactPolicy(ControlGroup("salt", 0.0)))
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def offered() -> tuple[str | None, set[str]]:
        decision = policy.decide(request_moment("c-1", "web", 5), None, now)
        return decision.catalogue_version, {o.offer_id for o in decision.offers}

    assert offered() == ("1", {"shop", "newsletter"})
    write(path, catalogue_toml("2", "shop", "winter-sale"))
    settled(reloader)
    assert offered() == ("2", {"shop", "winter-sale"})


def test_metrics_show_the_version_in_use_and_count_reloads() -> None:
    metrics = Metrics()
    first = catalogue_of("1", "shop", "newsletter")
    second = catalogue_of("2", "shop")
    metrics.catalogue_in_use(first)
    metrics.catalogue_in_use(second, APPLIED)
    metrics.catalogue_in_use(second, REFUSED)
    text = metrics.exposition().decode()
    assert f'moments_catalogue_info{{digest="{second.digest()}",version="2"}} 1.0' in text
    assert 'version="1"' not in text
    # a change published under the same version shows as another digest
    changed = catalogue_of("2", "shop", "winter-sale")
    metrics.catalogue_in_use(changed, APPLIED)
    text = metrics.exposition().decode()
    assert changed.digest() != second.digest() and second.digest() not in text
    assert f'moments_catalogue_info{{digest="{changed.digest()}",version="2"}} 1.0' in text
    assert "moments_catalogue_offers 2.0" in text
    assert 'moments_catalogue_reloads_total{outcome="applied"} 2.0' in text
    assert 'moments_catalogue_reloads_total{outcome="refused"} 1.0' in text


def test_reload_counts_start_from_zero_so_that_a_first_refusal_is_an_increase() -> None:
    """Prometheus sees no increase in a series whose first sample is already 1: the
    alert on a refused catalogue would stay silent after a process's first refusal."""
    text = Metrics().exposition().decode()
    assert 'moments_catalogue_reloads_total{outcome="applied"} 0.0' in text
    assert 'moments_catalogue_reloads_total{outcome="refused"} 0.0' in text
    assert 'moments_recommendation_fallbacks_total{reason="latency_budget"} 0.0' in text
    assert 'moments_recommendation_fallbacks_total{reason="store_unavailable"} 0.0' in text


def test_a_file_caught_part_written_is_not_applied(setup: Setup) -> None:
    """A catalogue written in place and read part way, cut at a line, often still loads
    (an offer short of its segments, a limit or an end date): it was applied."""
    path, holder, reloader, recorder = setup
    complete = catalogue_toml("2", "shop", "winter-sale")
    write(path, complete[: complete.index("[[offers]]", 1)])  # valid: version 2, one offer
    assert reloader.check() is None  # read once: it may still be being written
    write(path, complete)
    assert reloader.check() is None  # changed again since
    assert reloader.check() == APPLIED  # the same at two checks in a row
    assert [o.offer_id for o in holder.current.offers] == ["shop", "winter-sale"]
    assert recorder.calls == [("2", APPLIED)]


def test_a_sighup_says_the_file_is_written_and_takes_it_up_at_once(setup: Setup) -> None:
    path, holder, reloader, _ = setup
    write(path, catalogue_toml("2", "shop"))
    assert reloader.check(written=True) == APPLIED
    assert holder.current.version == "2"


def test_a_change_under_the_same_version_is_applied_with_a_warning(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """Applied silently, it was told by nothing: the version metric and every decision's
    catalogue_version stayed. Refused, the running processes would split from those that
    start with it, under one name: it is applied, and the warning says to version it."""
    path, holder, reloader, recorder = setup
    write(path, catalogue_toml("1", "shop"))  # newsletter gone, still version 1
    with caplog.at_level(logging.WARNING, "streams.catalogue_reload"):
        assert settled(reloader) == APPLIED
    assert [o.offer_id for o in holder.current.offers] == ["shop"]
    assert recorder.calls == [("1", APPLIED)]
    assert "its version did not" in said_by(caplog, "streams.catalogue_reload")[0].getMessage()


def test_the_digest_is_of_what_the_catalogue_says_not_of_its_keys_order() -> None:
    base = catalogue_toml("3", "shop")
    one = msgspec.toml.decode(base + '\n[contact_policy.daily_caps]\nweb = 5\nemail = 1\n',
                              type=OfferCatalogue)  # fmt: skip
    two = msgspec.toml.decode(base + '\n[contact_policy.daily_caps]\nemail = 1\nweb = 5\n',
                              type=OfferCatalogue)  # fmt: skip
    assert one == two and one.digest() == two.digest()
    other = msgspec.toml.decode(base + '\n[contact_policy.daily_caps]\nemail = 2\nweb = 5\n',
                                type=OfferCatalogue)  # fmt: skip
    assert other.digest() != one.digest()


def test_the_digest_is_of_a_campaigns_instants_not_of_the_offset_they_are_written_in() -> None:
    def starting(at: str) -> OfferCatalogue:
        offer = '[[offers]]\noffer_id = "sale"\ntitle = "Sale"\nchannels = ["web"]\n'
        return msgspec.toml.decode(
            f'version = "4"\n{offer}available_from = {at}\n', type=OfferCatalogue
        )

    utc = starting("2026-12-01T00:00:00Z")
    assert starting("2026-12-01T01:00:00+01:00").digest() == utc.digest()
    assert starting("2026-12-01T01:00:00Z").digest() != utc.digest()


def test_a_campaign_that_never_ends_in_local_time_is_applied_with_its_digest(
    setup: Setup,
) -> None:
    path, holder, _, _ = setup
    offer = '[[offers]]\noffer_id = "club"\ntitle = "Club"\nchannels = ["web"]\n'
    forever = "9999-12-31T23:59:59-05:00"  # past the years UTC can write
    write(path, f'version = "5"\n{offer}available_until = {forever}\n')
    metrics = Metrics()
    reloader = CatalogueReloader(path, holder, lambda c, o: metrics.catalogue_in_use(c, o))
    assert settled(reloader) == APPLIED
    assert holder.current.version == "5"
    info = {
        s.labels["version"]: s.labels["digest"] for s in metrics.catalogue_info.collect()[0].samples
    }
    assert info == {"5": holder.current.digest()}
    written_otherwise = forever.replace("23:59:59-05:00", "22:59:59-06:00")
    again = msgspec.toml.decode(
        f'version = "5"\n{offer}available_until = {written_otherwise}\n', type=OfferCatalogue
    )
    assert again.digest() == holder.current.digest()


def test_a_refused_file_shows_as_refused_for_as_long_as_it_stays(setup: Setup) -> None:
    """The refusal is counted once per content: the alert on that count cleared within 15
    minutes while the file stayed invalid, and every process started meanwhile exited 2."""
    path, _, reloader, _ = setup
    metrics = Metrics()
    metrics.catalogue_file_read(lambda: reloader.file_refused)

    def shown() -> float | None:
        return metrics.registry.get_sample_value("moments_catalogue_file_refused")

    assert settled(reloader) is None and shown() == 0.0
    write(path, catalogue_toml("2", "shop", "shop"))  # the same offer twice
    assert settled(reloader) == REFUSED and shown() == 1.0
    for _ in range(6):  # not counted again, but still refused
        assert reloader.check() is None and shown() == 1.0
    write(path, catalogue_toml("1", "shop", "newsletter"))  # the one in use put back
    assert settled(reloader) is None and shown() == 0.0
    path.unlink()  # gone: a process starting now would exit 2 as well
    assert settled(reloader) == REFUSED and shown() == 1.0
    write(path, catalogue_toml("3", "shop"))
    assert settled(reloader) == APPLIED and shown() == 0.0


def test_no_catalogue_file_is_refused_before_one_is() -> None:
    text = Metrics().exposition().decode()
    assert "moments_catalogue_file_refused 0.0" in text
