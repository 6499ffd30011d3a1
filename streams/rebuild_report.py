"""What ``moments rebuild`` (:mod:`streams.rebuild`) tells when it ends: the counts of what
it rebuilt (:class:`RebuildReport`), touchpoints by what became of them, or why it could
not go on (:class:`RebuildError`)."""

from __future__ import annotations

from dataclasses import dataclass

from feature_store import ApplyStatus


class RebuildError(RuntimeError):
    """The rebuild cannot go on: the target Redis is not empty (and --force was not
    given), or the erasures topic lost records to retention or holds one Moments cannot
    read."""


class TargetUnreachable(RebuildError):
    """The target Redis could not be reached at start: nothing was written, and a run
    once it answers starts afresh."""


# what became of a touchpoint applied, by the status the store gave it (None: its
# customer's keys could not be written); every touchpoint read lands in one part
STATUS_PART: dict[ApplyStatus | None, str] = {
    ApplyStatus.APPLIED: "applied",
    ApplyStatus.DUPLICATE: "duplicates",
    ApplyStatus.DUPLICATE_DECIDED: "duplicates",
    ApplyStatus.DUPLICATE_RECORDED: "duplicates",
    ApplyStatus.EXPIRED: "expired",
    ApplyStatus.OVER_CEILING: "over_ceiling",
    ApplyStatus.ERASED: "of_erased",
    ApplyStatus.NOT_ERASED: "not_written",  # (a fact for the erased only: no touchpoint is)
    None: "not_written",
}


@dataclass(frozen=True, slots=True)
class RebuildReport:
    touchpoints: int  # read; each counted in one of the parts below (see touchpoint_parts)
    skipped_invalid: int  # dead-lettered live, undecodable, or dated too far ahead
    decisions: int
    applied: int
    seconds: float
    erasures: int = 0  # customers erased again before the replay
    risk_snapshots: int = 0  # pending churn-risk snapshots taken again
    skipped_decisions: int = 0  # next-best-offer and intervention records not decoded
    risk_bands: int = 0  # customers whose risk band was stored again
    expired: int = 0  # touchpoints dated the store's TTL or longer ago: not applied
    erasures_lapsed: int = 0  # customers whose erasure's block had run out: not erased
    before_lapsed_erasure: int = 0  # their events dated before the block ended: skipped
    # touchpoints-dlq lost its oldest letters to retention: events the live pipeline
    # refused then (not as invalid: dated too far ahead, a failed update) are applied now
    dead_letters_lost: bool = False
    # customers whose keys Redis could not write as they should be (a key of another
    # type, a count that is no number): their records were skipped, as live dead-letters them
    customers_failed: int = 0
    of_erased: int = 0  # touchpoints of customers erased: held out (but for withdrawals)
    duplicates: int = 0  # touchpoints the target holds already (--force, or sent twice)
    over_ceiling: int = 0  # contacts that would break a ceiling: not applied, as live
    not_written: int = 0  # touchpoints of the customers whose keys could not be written
    outcomes: int = 0  # offer outcomes read
    skipped_outcomes: int = 0  # outcome records not decoded, or dated too far ahead
    acceptances: int = 0  # offers accepted (joined to their decisions) kept again

    def touchpoint_parts(self) -> list[tuple[int, str]]:
        """What became of the touchpoints read: the applied, then every other part not 0;
        together, every touchpoint read once.

        >>> RebuildReport(5, 1, 0, 2, 1.0, of_erased=1, duplicates=1).touchpoint_parts()
        [(2, 'applied'), (1, 'of erased customers'), (1, 'there already'), (1, 'invalid skipped')]
        """
        parts = [
            (self.applied, "applied"),
            (self.of_erased, "of erased customers"),
            (self.duplicates, "there already"),
            (self.expired, "expired"),
            (self.over_ceiling, "over a contact ceiling"),
            (self.before_lapsed_erasure, "dated before an erasure's block ran out"),
            (self.not_written, "not written"),
            (self.skipped_invalid, "invalid skipped"),
        ]
        return parts[:1] + [(count, said) for count, said in parts[1:] if count]

    def summary(self) -> str:
        """The counts, in a line, as the command prints them (and logs them).

        >>> line = RebuildReport(12, 1, 5, 9, 2.0, expired=2, erasures=1).summary()
        >>> line[:72]
        'rebuilt from 12 touchpoints (9 applied, 2 expired, 1 invalid skipped) an'
        >>> "0 customers whose erasure's block had run out" in line
        True
        >>> "2 outcomes (1 acceptances kept, 0 invalid skipped)" in RebuildReport(
        ...     1, 0, 1, 1, 1.0, outcomes=2, acceptances=1).summary()
        True
        """
        failed = (f"; the records of {self.customers_failed} customers whose keys could not "
                  "be written were skipped" if self.customers_failed else "")  # fmt: skip
        parts = ", ".join(f"{count} {said}" for count, said in self.touchpoint_parts())
        return (
            f"rebuilt from {self.touchpoints} touchpoints ({parts}) and "
            f"{self.decisions} decisions ({self.skipped_decisions} undecodable skipped), "
            f"{self.outcomes} outcomes ({self.acceptances} acceptances kept, "
            f"{self.skipped_outcomes} invalid skipped), "
            f"{self.erasures} customers kept erased, {self.erasures_lapsed} customers whose "
            f"erasure's block had run out, {self.risk_snapshots} churn-risk snapshots and "
            f"{self.risk_bands} risk bands taken again, in {self.seconds:.1f}s{failed}"
        )
