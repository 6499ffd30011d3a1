"""The offer-ranking part of ``moments bench``: how a learned decision's ranking grows
with the catalogue, which every web visit, inbound call and email open pays.

Per catalogue size, the bandit's whole ``rank`` (scores of every eligible offer, then
their order) and, on the same scores, the two ways of ordering them that
:mod:`agents.arm_ranking` has: a plain sort of every offer, and numpy finding the few
that can come first. Each figure is the median of several timed runs, all in the same
process.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agents.arm_ranking import ContenderRanking, PlainRanking, Ranking
from agents.bandit import LinUCBOffers
from agents.context import DIMENSION

OFFERS = (10, 50, 200, 500)
SHOWN = 3  # offers a web answer shows by default


def _median_us(call: Callable[[int], object], times: int) -> float:
    runs = []
    for _ in range(7):
        began = time.perf_counter()
        for i in range(times):
            call(i)
        runs.append((time.perf_counter() - began) / times)
    return round(statistics.median(runs) * 1e6, 1)


def _ordered(ranking: Ranking) -> object:
    return ranking.by_estimate(SHOWN), ranking.first_by_bound()  # as most decisions do


def _catalogue(offers: int, rng: random.Random) -> dict[str, Callable[[int], object]]:
    """The calls to time for a catalogue of ``offers``, by the figure each gives."""
    names = [f"offer-{i}" for i in range(offers)]
    model = LinUCBOffers(DIMENSION)
    for name in names[: offers * 9 // 10]:  # a tenth of them new, with no outcome
        for _ in range(20):
            x = [rng.random() for _ in range(DIMENSION)]
            model.learn_one(x, name, float(rng.random() < 0.1))
    worth = {name: rng.choice([1.0, 2.0, 5.0, 20.0]) for name in names}
    context = [rng.random() for _ in range(DIMENSION)]
    learned = [n for n in names if n in model.arms]
    v = np.asarray(context)
    means = np.array([model.arms[n].a_inv @ model.arms[n].b @ v for n in learned])
    bonuses = np.array([np.sqrt(v @ model.arms[n].a_inv @ v) * model.alpha for n in learned])
    unseen = (model.prior, model.alpha * float(np.sqrt(v @ v / model.ridge)))
    args = ({name: i for i, name in enumerate(learned)}, unseen, names, worth)
    plain = PlainRanking(means.tolist(), bonuses.tolist(), *args)
    if _ordered(plain) != _ordered(ContenderRanking(means, bonuses, *args)):
        raise RuntimeError("the two ways of ordering offers disagree")
    return {
        "rank_us": lambda i: model.rank(context, names, worth, f"d{i}"),
        "order_us_plain_sort": lambda _: _ordered(
            PlainRanking(means.tolist(), bonuses.tolist(), *args)
        ),
        "order_us_contenders": lambda _: _ordered(ContenderRanking(means, bonuses, *args)),
    }


def bench_ranking(times: int = 200) -> dict[str, Any]:
    """Per catalogue size: microseconds of ``rank``, and of each way of ordering."""
    report: dict[str, Any] = {"dimension": DIMENSION, "shown": SHOWN}
    rng = random.Random(11)
    for offers in OFFERS:
        figures = {name: _median_us(call, times) for name, call in _catalogue(offers, rng).items()}
        ratio = figures["order_us_contenders"] / figures["order_us_plain_sort"]
        report[f"offers_{offers}"] = figures | {"contenders_over_plain": round(ratio, 2)}
    return report
