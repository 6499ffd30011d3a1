"""MOMENTS_EVENT_LOOP picks the loop Moments' processes run on."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from streams.event_loop import EventLoopError, loop_factory, loop_name, new_event_loop
from streams.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("choice", "name"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")]
)
def test_each_choice_makes_its_loop(choice: str, name: str) -> None:
    loop = new_event_loop(choice)  # uvloop is a dependency wherever it runs
    try:
        assert loop_name(loop) == name
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


def test_auto_falls_back_to_asyncio_where_uvloop_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now fails
    assert loop_factory("auto") is asyncio.new_event_loop


def test_unknown_choices_are_refused_by_the_settings_and_the_factory() -> None:
    with pytest.raises(SettingsError, match="MOMENTS_EVENT_LOOP"):
        Settings.from_env({"MOMENTS_EVENT_LOOP": "trio"})
    with pytest.raises(EventLoopError, match="MOMENTS_EVENT_LOOP"):
        loop_factory("trio")
    assert Settings.from_env({}).event_loop == "auto"


@pytest.mark.parametrize("command", ["api", "worker"])
def test_uvloop_asked_for_but_not_installed_is_one_line_and_exit_2(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was two tracebacks and exit 1, where every other setting is one line, exit 2."""
    from streams.cli import main

    for name in [n for n in os.environ if n.startswith("MOMENTS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MOMENTS_EVENT_LOOP", "uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now fails
    hup = signal.getsignal(signal.SIGHUP)
    try:
        assert main([command]) == 2
    finally:
        signal.signal(signal.SIGHUP, hup)
    err = capsys.readouterr().err
    assert err.startswith("moments: MOMENTS_EVENT_LOOP=uvloop, but uvloop is not installed")
    assert err.count("\n") == 1 and "Traceback" not in err
