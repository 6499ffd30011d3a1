"""The local Kafka's class archive: one per jars and JVM, used only when written (no
services; the JVM check runs ``java`` when there is one)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from streams.services import kafka_classes, local_kafka


def a_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "java") -> Path:
    java = tmp_path / "jvm" / name
    java.parent.mkdir(exist_ok=True)
    java.write_text("#!/bin/sh\n")
    monkeypatch.setattr(kafka_classes.shutil, "which", lambda _: str(java))
    return java


def test_the_archive_is_used_once_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_java(tmp_path, monkeypatch)
    libs = tmp_path / "kafka-4.1.1-abcd" / "libs"
    libs.mkdir(parents=True)
    assert kafka_classes.archive_flags(libs) == []  # none yet: the JVM loads as before
    archive = kafka_classes.class_archive(libs)
    assert archive is not None and archive.parent == libs.parent
    archive.write_bytes(b"classes")
    assert kafka_classes.archive_flags(libs) == [f"-XX:SharedArchiveFile={archive}"]


def test_another_jvm_has_an_archive_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    libs = tmp_path / "libs"
    java = a_java(tmp_path, monkeypatch)
    first = kafka_classes.class_archive(libs)
    os.utime(java, ns=(0, 10**18))  # the same path, upgraded in place
    assert kafka_classes.class_archive(libs) != first
    a_java(tmp_path, monkeypatch, name="java-21")
    assert kafka_classes.class_archive(libs) not in (first, None)
    monkeypatch.setattr(kafka_classes.shutil, "which", lambda _: None)
    assert kafka_classes.class_archive(libs) is None
    assert kafka_classes.archive_flags(libs) == []


def test_only_the_broker_writes_the_archive_and_every_jvm_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_java(tmp_path, monkeypatch)
    libs = tmp_path / "kafka" / "libs"
    libs.mkdir(parents=True)
    monkeypatch.setattr(local_kafka, "kafka_libs", lambda: libs)
    archive = kafka_classes.class_archive(libs)
    assert archive is not None
    archive.write_bytes(b"classes")
    writing = local_kafka.LocalKafka(tmp_path / "w", archive_at_exit=tmp_path / "out.jsa")
    log = tmp_path / "kafka.log"
    broker = writing._java("kafka.Kafka", "server.properties", log_path=log)
    tool = writing._java("kafka.tools.StorageTool", "format", log_path=log)
    assert f"-XX:ArchiveClassesAtExit={tmp_path / 'out.jsa'}" in broker
    assert not any(a.startswith("-XX:SharedArchiveFile") for a in broker)
    assert f"-XX:SharedArchiveFile={archive}" in tool
    reading = local_kafka.LocalKafka(tmp_path / "r")._java("kafka.Kafka", "s", log_path=log)
    assert f"-XX:SharedArchiveFile={archive}" in reading
    assert reading.index(f"-XX:SharedArchiveFile={archive}") < reading.index("-cp")


@pytest.mark.skipif(shutil.which("java") is None, reason="no java here to ask")
def test_a_jvm_given_an_archive_it_cannot_use_starts_all_the_same(tmp_path: Path) -> None:
    """Why an archive the JVM cannot use (damaged, or gone) costs speed and never a
    start."""
    garbage = tmp_path / "classes.jsa"
    garbage.write_bytes(os.urandom(4096))
    java = shutil.which("java")
    assert java is not None
    for archive in (garbage, tmp_path / "missing.jsa"):
        ran = subprocess.run([java, f"-XX:SharedArchiveFile={archive}", "-version"],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert ran.returncode == 0, ran.stderr


class _Broker:
    """Stands in for the broker of a build: what its JVM leaves at exit (no JVM run)."""

    starts = 0

    def __init__(self, workdir: Path, archive_at_exit: Path, fails: bool, writes: bool) -> None:
        self.archive_at_exit, self.fails, self.writes = archive_at_exit, fails, writes

    def start(self) -> None:
        _Broker.starts += 1
        if self.fails:
            raise local_kafka.ServiceError("Kafka not ready within 90s")

    def stop(self) -> None:  # the JVM writes its archive as it exits, started or not
        if self.writes:
            self.archive_at_exit.write_bytes(b"classes")


@pytest.mark.parametrize(
    ("fails", "writes", "built", "tried_again"),
    [(False, True, True, False), (False, False, False, False), (True, True, False, True)],
    ids=["written", "this-jvm-writes-none", "broker-did-not-start"],
)
def test_a_build_leaves_an_archive_or_none_and_never_a_part(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fails: bool,
    writes: bool,
    built: bool,
    tried_again: bool,
) -> None:
    a_java(tmp_path, monkeypatch)
    libs = tmp_path / "kafka" / "libs"
    libs.mkdir(parents=True)
    monkeypatch.setattr(local_kafka, "kafka_libs", lambda: libs)
    monkeypatch.setattr(local_kafka, "LocalKafka", lambda workdir, archive_at_exit: _Broker(
        workdir, archive_at_exit, fails, writes))  # fmt: skip
    _Broker.starts = 0
    archive = kafka_classes.class_archive(libs)
    assert archive is not None
    assert kafka_classes.build_class_archive() == (archive if built else None)
    assert archive.is_file() == built
    assert kafka_classes.build_class_archive() == (archive if built else None)
    assert _Broker.starts == (2 if tried_again else 1)  # a JVM that wrote none: not again
    left = sorted(p.name for p in libs.parent.iterdir() if p.name != "libs")
    assert left == ([archive.name] if built else [] if tried_again else [f"{archive.stem}.none"])
