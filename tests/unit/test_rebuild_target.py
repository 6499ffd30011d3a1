"""`moments rebuild --redis-url` is checked as MOMENTS_REDIS_URL is, before anything runs."""

from __future__ import annotations

import pytest

from streams.cli import main


@pytest.mark.parametrize(
    ("url", "said"),
    [("http://x", "must be a redis://"), ("redis://h/1/5", "database number"),
     ("redis://h/0?socket_timeout=1", "socket_timeout is not supported")],
)  # fmt: skip
def test_a_target_that_cannot_be_used_is_refused_with_one_line(
    url: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ended in a traceback (exit 1), after the topics were looked up."""
    assert main(["rebuild", "--redis-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moments rebuild: --redis-url: ") and said in err
    assert "MOMENTS_REDIS_URL" not in err and len(err.splitlines()) == 1
