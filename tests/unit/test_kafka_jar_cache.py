"""The local Kafka's jars are cached per Kafka version and pom.xml (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.services import local_kafka


def test_a_changed_pom_is_resolved_anew_not_served_from_the_versions_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOMENTS_CACHE_DIR", str(tmp_path / "cache"))
    pom = tmp_path / "pom.xml"
    monkeypatch.setattr(local_kafka, "LOCAL_DIR", tmp_path)
    resolved: list[str] = []

    def maven(cmd: list[str], **_: object) -> object:  # stands in for mvn: writes a jar
        resolved.append(pom.read_text())
        out = Path(next(a for a in cmd if a.startswith("-DoutputDirectory="))[18:])
        out.mkdir(parents=True)
        (out / "kafka_2.13-4.1.1.jar").write_bytes(b"")
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(local_kafka.shutil, "which", lambda _: "/usr/bin/mvn")
    monkeypatch.setattr(local_kafka.subprocess, "run", maven)
    pom.write_text("<project>one</project>")
    first = local_kafka.kafka_libs("4.1.1")
    assert local_kafka.kafka_libs("4.1.1") == first and len(resolved) == 1  # cached
    pom.write_text("<project>one, and a dependency more</project>")
    second = local_kafka.kafka_libs("4.1.1")
    assert second != first and resolved[-1].endswith("more</project>")
