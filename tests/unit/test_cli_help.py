"""What ``moments <command> --help`` tells an operator: every option with its meaning,
its default and its bounds, as the README's table of commands gives them, and for the
long-running processes, which take no options, where their settings are and how they
exit."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from streams import cli, cli_bounds
from streams.cli_arguments import (
    BENCH_EVENTS,
    BENCH_LATENCY_SECONDS,
    BENCH_RATE,
    SIMULATED_CUSTOMERS,
    SIMULATED_RATES,
    parser,
)
from streams.lift_report import DEFAULT_DAYS

README = Path(__file__).parents[2] / "README.md"
BENCH_BOUNDS = {
    "--events": BENCH_EVENTS,
    "--rate": BENCH_RATE,
    "--latency-seconds": BENCH_LATENCY_SECONDS,
}


def _commands() -> dict[str, argparse.ArgumentParser]:
    found = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(found.choices)


def _options(command: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in command._actions if not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_of_every_command_says_what_it_is(name: str) -> None:
    """``demo --rate``, ``simulate --customers/--seed`` and ``bench --events`` had no help
    at all; ``evaluate`` gave no defaults."""
    command = _commands()[name]
    assert command.description, f"moments {name} --help says nothing of what it does"
    for option in _options(command):
        said = option.help or ""
        assert said.strip() and said != argparse.SUPPRESS, f"{name} {option.dest}: no help"
        if option.default not in (None, False) and option.nargs != 0:
            assert "default" in said, f"{name} {option.dest}: its default is not shown"
            shown = command.format_help()
            assert f"default: {option.default}" in " ".join(shown.split())


@pytest.mark.parametrize("name", ["worker", "api"])
def test_the_processes_help_names_their_settings_and_exit_codes(name: str) -> None:
    """Their --help printed only ``-h``."""
    said = " ".join(_commands()[name].format_help().split())
    for needed in ("MOMENTS_*", "docs/configuration.md", "Exit 2", "3 when Kafka", "130"):
        assert needed in said


def test_rebuild_help_gives_its_exit_codes() -> None:
    said = " ".join(_commands()["rebuild"].format_help().split())
    assert "Exit 2" in said and "3 when Redis or Kafka" in said


@pytest.mark.parametrize("name", ["simulate", "demo"])
def test_the_bounds_in_help_are_those_the_command_enforces(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    said = " ".join(_commands()[name].format_help().split())
    assert f"touchpoints a second, {SIMULATED_RATES}" in said
    assert f"customers simulated, {SIMULATED_CUSTOMERS}" in said
    assert cli.main([name, "--rate", "0"]) == 2
    assert SIMULATED_RATES in capsys.readouterr().err
    assert cli.main([name, "--customers", "0"]) == 2
    assert SIMULATED_CUSTOMERS in capsys.readouterr().err


def test_bench_help_gives_the_bounds_the_command_enforces(
    capsys: pytest.CaptureFixture[str],
) -> None:
    said = " ".join(_commands()["bench"].format_help().split())
    for option, (low, high) in BENCH_BOUNDS.items():
        assert f"{cli_bounds.bounds(low, high)} (default:" in said, option
        for refused, taken in ((low - 1, low), (high * 2, high)):
            with pytest.raises(SystemExit):
                parser().parse_args(["bench", option, f"{refused:.0f}"])
            assert cli_bounds.bounds(low, high) in capsys.readouterr().err
            parser().parse_args(["bench", option, f"{taken:.0f}"])


def test_lift_help_gives_the_days_the_report_takes() -> None:
    said = " ".join(_commands()["lift"].format_help().split())
    assert f"default: {DEFAULT_DAYS:g} back" in said


def _readme_commands() -> dict[str, tuple[str, str]]:
    """Each command of the README's table: its usage, and what the table says of it."""
    rows = re.findall(r"^\| `moments ([a-z-]+)([^`]*)` \|(.*)$", README.read_text(), re.M)
    return {name: (usage, what) for name, usage, what in rows}


def test_the_readme_table_and_help_agree() -> None:
    """Every command in both; every ``--option N`` the README shows is its default; the
    bounds the README gives for ``demo`` are those ``--help`` gives."""
    table, commands = _readme_commands(), _commands()
    assert set(table) == set(commands)
    for name, (usage, _) in table.items():
        options = {a.option_strings[0]: a for a in _options(commands[name]) if a.option_strings}
        for option, value in re.findall(r"\[?(--[a-z-]+) ([0-9.]+[a-z]?)\]?", usage):
            assert option in options, f"moments {name} has no {option}"
            default = options[option].default
            if default is None:  # worked out when not given (lift --days): help says it
                assert f"default: {value} " in (options[option].help or ""), f"{name} {option}"
            else:
                assert str(default).removesuffix(".0") == value, f"{name} {option}"
    demo = " ".join(commands["demo"].format_help().split())
    for bounds in (SIMULATED_RATES, SIMULATED_CUSTOMERS):
        assert bounds in table["demo"][1] and bounds in demo
