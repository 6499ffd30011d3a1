"""What the test run's reports carry is sent between xdist's processes as UTF-8."""

from __future__ import annotations

from tests.conftest import _sendable


def test_a_lone_surrogate_in_a_report_is_escaped_and_the_rest_kept() -> None:
    report = {"sections": [("Captured log call", "bad \udcff header")], "n": 1, "ok": "é"}
    sent = _sendable(report)
    assert sent == {"sections": [("Captured log call", "bad \\udcff header")], "n": 1, "ok": "é"}
    assert str(sent).encode()  # UTF-8 carries it all
