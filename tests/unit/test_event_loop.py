"""MOMENTS_EVENT_LOOP picks the loop Moments' processes run on."""

from __future__ import annotations

import asyncio
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
