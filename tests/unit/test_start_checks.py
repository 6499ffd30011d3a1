"""`moments worker` and `moments api` check their local files before Kafka and Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import CatalogueError
from streams.cli import check_local_files
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
    with pytest.raises(CatalogueError, match="cannot read offer catalogue"):
        check_local_files(Settings(catalogue_path=str(tmp_path / "none.toml")), data_dir=False)
