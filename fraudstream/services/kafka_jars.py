"""Apache Kafka's jars from Maven Central, fetched once into a cache directory with Maven.

The broker runs straight from the ``kafka_2.13`` artifact and its runtime dependencies, so no
release tarball (which no package registry serves) is needed. A marker file is written only
after a complete download, so an interrupted fetch is redone; a file lock keeps two processes
(pytest-xdist workers, a demo and a test run) from fetching into the same place at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from fraudstream.errors import ServiceError
from fraudstream.services.endpoints import CACHE_DIR_ENV, KAFKA_VERSION
from fraudstream.services.process import run_to_completion

__all__ = ["default_cache_dir", "ensure_kafka_jars", "fetch_kafka_jars"]

logger = logging.getLogger(__name__)

# log4j-core/api come with kafka_2.13, but the SLF4J binding the release tarball ships does not:
# without it the broker's SLF4J logging goes nowhere. Its version follows Kafka 4.1's log4j.
_LOG4J_VERSION = "2.24.3"
# Pinned so every Maven version resolves the same goal (Maven's own default is much older).
_DEPENDENCY_PLUGIN_VERSION = "3.8.1"
_MARKER = ".complete"
_FETCH_TIMEOUT_S = 900.0

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fraudstream.local</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>{plugin}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
"""


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """``FRAUDSTREAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/fraudstream``, else ``~/.cache/...``."""
    explicit = env.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path(env.get("HOME") or Path.home()) / ".cache"
    return base / "fraudstream"


def fetch_kafka_jars(env: Mapping[str, str], cache_dir: Path | None = None) -> Path:
    """Make sure the pinned Kafka's jars are cached (``services fetch``); return their directory.

    Args:
        env: the process environment (``FRAUDSTREAM_CACHE_DIR``, ``XDG_CACHE_HOME``, ``PATH``).
        cache_dir: overrides the cache directory taken from ``env``.

    Raises:
        ServiceError: Maven is missing or the download failed; the message names the log.
    """
    return ensure_kafka_jars(cache_dir if cache_dir is not None else default_cache_dir(env), env)


def ensure_kafka_jars(cache_dir: Path, env: Mapping[str, str]) -> Path:
    """Return the directory of Kafka's jars under ``cache_dir``, fetching them the first time.

    Raises:
        ServiceError: Maven is missing or the download failed; the message names the log.
    """
    home = cache_dir / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    if _complete(home, libs):
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".lock"):
        if _complete(home, libs):  # another process finished it while we waited
            return libs
        (home / _MARKER).unlink(missing_ok=True)
        _fetch(home, libs, env)
    return libs


def _complete(home: Path, libs: Path) -> bool:
    """The marker exists and every jar it lists is still there."""
    try:
        listed = (home / _MARKER).read_text(encoding="utf-8").split()
    except OSError:
        return False
    return bool(listed) and all((libs / name).is_file() for name in listed)


def _fetch(home: Path, libs: Path, env: Mapping[str, str]) -> None:
    mvn = env.get("FRAUDSTREAM_MVN") or shutil.which("mvn", path=env.get("PATH", os.defpath))
    if not mvn:
        msg = (
            f"Kafka {KAFKA_VERSION} is not in the cache {home} and Maven (mvn) is not on PATH; "
            "install Maven (Debian: apt-get install maven) or set FRAUDSTREAM_KAFKA_BOOTSTRAP"
        )
        raise ServiceError(msg)
    shutil.rmtree(libs, ignore_errors=True)  # a partial earlier attempt
    pom = home / "pom.xml"
    pom.write_text(
        _POM.format(kafka=KAFKA_VERSION, log4j=_LOG4J_VERSION, plugin=_DEPENDENCY_PLUGIN_VERSION),
        encoding="utf-8",
    )
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=home))
    argv = [
        mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]  # fmt: skip
    logger.info("fetching kafka jars version=%s cache=%s", KAFKA_VERSION, home)
    started = time.monotonic()
    try:
        run_to_completion("maven", argv, env, home / "fetch.log", _FETCH_TIMEOUT_S)
        jars = sorted(p.name for p in staging.glob("*.jar"))
        if not any(name.startswith(f"kafka_2.13-{KAFKA_VERSION}") for name in jars):
            msg = f"maven finished but kafka_2.13-{KAFKA_VERSION}.jar is missing in {staging}"
            raise ServiceError(msg)
        staging.rename(libs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (home / _MARKER).write_text("\n".join(jars) + "\n", encoding="utf-8")
    logger.info("fetched kafka jars count=%d seconds=%.1f", len(jars), time.monotonic() - started)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
