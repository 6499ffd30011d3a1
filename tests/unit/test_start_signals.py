"""SIGTERM while ``moments`` starts: the modules of a worker or an API take a second or
two to import, and an orchestrator's stop then ended the process at once, with 143 and
no word. It now ends as Ctrl-C does, with 130."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Run in a process of its own: an importer that stops the process (SIGTERM to itself)
# the moment ``module`` is imported, and waits there for the signal to land.
STOPPED_WHILE_IMPORTING = """
import importlib.abc, os, signal, sys, time

class Stop(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(10)  # the signal lands here
            except KeyboardInterrupt:
                if {in_extension!r}:  # as an extension module's set-up reports it
                    raise ImportError("initialization failed")
                raise
        return None

sys.meta_path.insert(0, Stop())
sys.argv = ["moments", *{argv!r}]
from streams.moments_command import main
sys.exit(main())
"""


def _stopped_while_importing(
    module: str, *argv: str, in_extension: bool = False
) -> subprocess.CompletedProcess[str]:
    code = STOPPED_WHILE_IMPORTING.format(module=module, argv=list(argv),
                                          in_extension=in_extension)  # fmt: skip
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={"MOMENTS_LOG_FORMAT": "text", "PATH": ""})  # fmt: skip


@pytest.mark.parametrize("module", ["streams.cli", "streams.topic_replay"])
def test_sigterm_while_the_command_imports_ends_it_as_ctrl_c(module: str) -> None:
    """(``streams.topic_replay`` imports once ``streams.cli`` has, before the command's
    own handling began: a SIGTERM there still ended it with 143.)"""
    done = _stopped_while_importing(module, "worker")
    assert done.returncode == 130, done
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("command", "module"), [("worker", "streams.app"), ("api", "streams.api.server")]
)
def test_sigterm_while_a_worker_or_the_api_imports_its_parts_ends_it_as_ctrl_c(
    command: str, module: str
) -> None:
    done = _stopped_while_importing(module, command)
    assert done.returncode == 130, done
    assert f"Moments {command} stopped while it started" in done.stderr + done.stdout, done
    assert "Traceback" not in done.stderr, done.stderr


def test_sigterm_in_an_extensions_set_up_while_a_worker_imports_ends_it_as_ctrl_c() -> None:
    """A stop that lands while a compiled extension sets itself up (scipy's, as the
    churn-risk model imports) comes out as ``ImportError: initialization failed``: the
    worker ended with 1 and a traceback, as if it had crashed."""
    done = _stopped_while_importing("streams.app", "worker", in_extension=True)
    assert done.returncode == 130, done
    assert "Moments worker stopped while it started" in done.stderr + done.stdout, done
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("command", "module"),
    [("demo", "streams.demo"), ("bench", "streams.bench"), ("rebuild", "streams.rebuild")],
)
def test_sigterm_while_a_command_stopped_like_ctrl_c_imports_its_parts_ends_it_so(
    command: str, module: str
) -> None:
    """They take SIGTERM as Ctrl-C once their modules are in (130): in
    the import before, it ended them with 143."""
    done = _stopped_while_importing(module, command)
    assert done.returncode == 130, done
    assert "Traceback" not in done.stderr, done.stderr


def test_sigterm_is_as_it_was_once_a_command_is_over() -> None:
    """The console script's handling of SIGTERM (a Ctrl-C) was back once a worker or the
    API had ended: a second SIGTERM while it exited turned 0 into 130."""
    code = (
        "import signal, sys\n"
        "from streams import cli, moments_command\n"
        "cli.COMMANDS['check-catalogue'] = lambda args, settings: 0\n"
        "sys.argv = ['moments', 'check-catalogue']\n"
        "moments_command.main()\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
    )
    for command in ("check-catalogue", "api"):
        run = code.replace("check-catalogue", command)
        done = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.stdout.strip().endswith("True"), (command, done)
