"""The ``moments`` console script, as pyproject.toml names it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs the console script's function with a Ctrl-C (SIGINT) arriving while the
# command's modules are still importing: aiokafka's, which every command imports.
INTERRUPTED_WHILE_IMPORTING = """
import builtins, importlib, os, signal, sys
real = builtins.__import__
def interrupting(name, *args, **kwargs):
    if name == "aiokafka.errors":
        os.kill(os.getpid(), signal.SIGINT)
    return real(name, *args, **kwargs)
builtins.__import__ = interrupting
sys.argv = ["moments", "--help"]
module, _, function = {entry!r}.partition(":")
sys.exit(getattr(importlib.import_module(module), function)())
"""


def test_ctrl_c_while_the_command_imports_ends_quietly() -> None:
    """It printed a KeyboardInterrupt traceback from deep inside an import."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    code = INTERRUPTED_WHILE_IMPORTING.format(entry=scripts["moments"])
    ran = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 130, ran.stderr
    assert ran.stderr == "" and ran.stdout == ""
