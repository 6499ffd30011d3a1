"""A class-data archive of the local Kafka broker's classes, so that its JVMs start faster.

A JVM spends most of a broker's start loading and verifying its classes. The archive
holds them ready to map, one per set of Kafka jars and per JVM; ``make deps`` (and so
``make test``) writes it once with :func:`build_class_archive`. A JVM given an archive it
cannot use (damaged, or made for other jars) loads its classes as before (with a warning
in its log for the latter), so an archive out of date costs speed, never a start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def class_archive(libs: Path) -> Path | None:
    """Where the archive of the jars in ``libs`` for the ``java`` on PATH is kept (None:
    no java)."""
    java = shutil.which("java")
    if java is None:
        return None
    real = os.path.realpath(java)
    jvm = f"{real}:{os.stat(real).st_mtime_ns}"  # another JVM, another archive
    return libs.parent / f"classes-{hashlib.sha256(jvm.encode()).hexdigest()[:8]}.jsa"


def archive_flags(libs: Path) -> list[str]:
    """The JVM flags that use the archive of ``libs``, when there is one."""
    archive = class_archive(libs)
    return [f"-XX:SharedArchiveFile={archive}"] if archive and archive.is_file() else []


def build_class_archive() -> Path | None:
    """Write the archive of the cached Kafka jars, unless it is there already: start a
    broker that archives the classes it loaded as it stops. Its path; None when there is
    none to be had (no java, a JVM that writes none, a broker that did not start): the
    brokers then start without one, only slower."""
    from streams.services.local_kafka import LocalKafka, kafka_libs
    from streams.services.processes import ServiceError

    archive = class_archive(kafka_libs())
    if archive is None or archive.is_file():
        return archive
    none_written = archive.with_suffix(".none")  # this JVM wrote none: not tried again
    if none_written.is_file():
        return None
    written = archive.with_name(f".{archive.name}.{os.getpid()}")  # then renamed: whole
    try:
        with tempfile.TemporaryDirectory(prefix="moments-kafka-classes-") as tmp:
            broker = LocalKafka(Path(tmp) / "kafka", archive_at_exit=written)
            try:
                broker.start()
            finally:
                broker.stop()
        if not written.is_file():
            none_written.touch()
            return None
        os.replace(written, archive)
        return archive
    except (ServiceError, OSError) as exc:  # tried again next time
        log.warning("no class archive for the local Kafka broker: %s", exc)
        return None
    finally:
        written.unlink(missing_ok=True)
