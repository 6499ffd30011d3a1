"""constraints.txt pins every dependency pyproject.toml names, within its range, so that
``make`` (and CI) install the versions the tests ran with."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(spec) for spec in names]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    for requirement in _requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not installed on this platform
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, outside {requirement}"
        )


def test_the_makefile_installs_with_the_constraints() -> None:
    """As an environment variable, the constraints reach the separate install of the build
    backend too (``-c`` does not); pip itself is pinned."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "PIP_CONSTRAINT=constraints.txt $(BIN)/pip install -q -e '.[dev]'" in makefile
    assert re.search(r"pip install -q --upgrade pip==[0-9.]+\n", makefile)


def test_the_build_backend_is_pinned_within_its_range() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (backend,) = [Requirement(r) for r in project["build-system"]["requires"]]
    assert backend.specifier.contains(_pins()[canonicalize_name(backend.name)])


def test_what_an_extra_brings_in_is_pinned_too() -> None:
    """aiokafka's extras bring in cramjam (lz4, snappy and zstd records), which no line of
    pyproject.toml names: constraints.txt pins it all the same."""
    from importlib.metadata import requires

    pins = _pins()
    for requirement in _requirements():
        for extra in sorted(requirement.extras):
            for spec in requires(requirement.name) or []:
                brought = Requirement(spec)
                if brought.marker is not None and brought.marker.evaluate({"extra": extra}):
                    name = canonicalize_name(brought.name)
                    assert name in pins, (
                        f"{brought.name} ({requirement.name}[{extra}]) is not pinned"
                    )
                    assert brought.specifier.contains(pins[name], prereleases=True)
