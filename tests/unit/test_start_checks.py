"""`moments worker` and `moments api` check their local files before Kafka and Redis."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from schemas import CatalogueError
from streams.cli import main
from streams.cli_processes import catalogue_hint, check_local_files
from streams.services import ServiceError
from streams.settings import Settings, SettingsError


def test_a_data_folder_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    """It was a traceback (exit 1) once the topics were made and Redis checked."""
    taken = tmp_path / "a-file"
    taken.write_text("")
    with pytest.raises(SettingsError, match=r"MOMENTS_DATA_DIR.*not a folder"):
        check_local_files(Settings(data_dir=str(taken)), data_dir=True)
    check_local_files(Settings(data_dir=str(tmp_path / "new" / "folder")), data_dir=True)
    assert (tmp_path / "new" / "folder").is_dir()


def test_a_missing_catalogue_is_said_before_kafka_is_tried(tmp_path: Path) -> None:
    """With Kafka down, the user was told of Kafka (exit 3), not of the catalogue."""
    with pytest.raises(
        CatalogueError, match=r"^MOMENTS_CATALOGUE_PATH: cannot read offer catalogue"
    ):
        check_local_files(Settings(catalogue_path=str(tmp_path / "none.toml")), data_dir=False)


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_catalogue_path_is_refused_by_name(blank: str) -> None:
    """A ConfigMap key left blank was read as the folder ".": "Is a directory"."""
    with pytest.raises(SettingsError, match="MOMENTS_CATALOGUE_PATH must name"):
        Settings(catalogue_path=blank).validate()


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_data_folder_is_refused_by_name(blank: str) -> None:
    """It was taken as the working folder: the worker wrote its tables there (in the
    image, a home folder that Kubernetes' read-only root file system would not take)."""
    with pytest.raises(SettingsError, match=r"^MOMENTS_DATA_DIR must name a folder"):
        Settings.from_env({"MOMENTS_DATA_DIR": blank})


def test_the_default_catalogue_missing_says_to_name_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed from the wheel, the repository's default catalogue is not there."""
    gone = str(tmp_path / "deploy" / "catalogue" / "offers.toml")
    hint = catalogue_hint(Settings(catalogue_path=gone), default=gone)
    assert "MOMENTS_CATALOGUE_PATH is not set" in hint and "your offer catalogue" in hint
    assert catalogue_hint(Settings(catalogue_path=gone)) == ""  # named: no hint
    assert catalogue_hint(Settings()) == ""  # the checkout's is there
    monkeypatch.setenv("MOMENTS_CATALOGUE_PATH", gone)
    assert main(["check-catalogue"]) == 2
    assert (
        capsys.readouterr().err
        == f"moments: cannot read offer catalogue {gone}: No such file or directory\n"
    )


def test_the_local_kafka_outside_a_checkout_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed Moments has no deploy/local: `moments demo` was a traceback."""
    import streams.cli as cli
    from streams.services import local_kafka

    monkeypatch.setattr(local_kafka, "LOCAL_DIR", tmp_path / "deploy" / "local")
    with pytest.raises(ServiceError, match="runs from a checkout of the Moments repository"):
        local_kafka.local_file("kafka-server.properties")

    def demo(args: object, settings: Settings) -> int:
        local_kafka.local_file("pom.xml")
        return 0

    monkeypatch.setitem(cli.COMMANDS, "demo", demo)
    assert main(["demo"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("moments: ") and err.count("\n") == 1 and "pom.xml" in err


def test_a_catalogue_named_on_the_command_line_gets_no_hint_about_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import streams.cli as cli

    monkeypatch.setattr(cli, "catalogue_hint", lambda settings: " (HINT)")
    monkeypatch.setenv("MOMENTS_CATALOGUE_PATH", str(tmp_path / "default.toml"))
    assert main(["check-catalogue"]) == 2
    assert capsys.readouterr().err.endswith(" (HINT)\n")
    assert main(["check-catalogue", str(tmp_path / "mine.toml")]) == 2
    assert capsys.readouterr().err.endswith("mine.toml: No such file or directory\n")


def test_a_worker_whose_web_port_is_taken_stops_in_one_line_before_kafka(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was a traceback from Faust's web server and exit 1, after the topics were
    made; the API said it in one line already."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("MOMENTS_WEB_PORT", str(port))
        monkeypatch.setenv("MOMENTS_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached
        try:
            assert main(["worker"]) == 2
        finally:  # the loop the worker made for itself
            asyncio.get_event_loop_policy().get_event_loop().close()
            asyncio.set_event_loop(None)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"moments: MOMENTS_WEB_HOST / MOMENTS_WEB_PORT: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    )
