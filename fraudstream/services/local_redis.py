"""A ``redis-server`` process on a free loopback port, optionally with an append-only file."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fraudstream.errors import ServiceError
from fraudstream.services.endpoints import REDIS_SERVER_ENV
from fraudstream.services.probe import RedisAddress, redis_info, redis_ping
from fraudstream.services.process import LocalProcess, free_ports

__all__ = ["LocalRedis", "start_local_redis"]

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class LocalRedis:
    """A running local ``redis-server``: its URL, version, process and files."""

    url: str
    version: str
    port: int
    process: LocalProcess
    work_dir: Path

    def stop(self) -> None:
        """Shut the server down (SIGTERM makes Redis flush the AOF), then reap it."""
        self.process.stop()


def find_redis_server(env: Mapping[str, str]) -> str:
    """Return the ``redis-server`` to run: ``FRAUDSTREAM_REDIS_SERVER`` or the one on ``PATH``.

    Raises:
        ServiceError: none was found.
    """
    explicit = env.get(REDIS_SERVER_ENV)
    found = explicit or shutil.which("redis-server", path=env.get("PATH", os.defpath))
    if not found or not os.access(found, os.X_OK):
        where = f"{REDIS_SERVER_ENV}={explicit}" if explicit else "PATH"
        msg = (
            f"redis-server not found in {where}; install it (Debian: apt-get install redis-server)"
        )
        raise ServiceError(msg)
    return found


def start_local_redis(
    work_dir: Path,
    env: Mapping[str, str],
    *,
    aof: bool = False,
    port: int | None = None,
    detached: bool = False,
    timeout_s: float = 30.0,
) -> LocalRedis:
    """Start ``redis-server`` bound to 127.0.0.1 with its data and log under ``work_dir``.

    Args:
        work_dir: holds ``data/`` (the AOF directory when ``aof``) and ``redis.log``; reusing
            a directory with ``aof=True`` replays what the previous server wrote.
        env: the child's environment; ``PATH`` or ``FRAUDSTREAM_REDIS_SERVER`` locates the binary.
        aof: ``appendonly yes`` with ``appendfsync everysec``; otherwise no persistence at all.
        port: a fixed port instead of a free one.
        detached: keep running after this Python process exits.
        timeout_s: how long to wait for ``PING`` to answer.

    Raises:
        ServiceError: the binary is missing, the server exited (e.g. the port is taken) or it
            did not answer in time; the message names ``redis.log``.
    """
    binary = find_redis_server(env)
    data_dir = (work_dir / "data").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = work_dir.resolve() / "redis.log"
    chosen = port if port is not None else free_ports(1, _HOST)[0]
    argv = [
        binary,
        "--bind", _HOST,
        "--port", str(chosen),
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--logfile", "",
        "--save", "",
        "--appendonly", "yes" if aof else "no",
        "--appendfsync", "everysec",
    ]  # fmt: skip
    process = LocalProcess.spawn("redis", argv, env, log_file, detached=detached)
    address = RedisAddress(_HOST, chosen)
    process.wait_ready(lambda: redis_ping(address), timeout_s, f"PING on {_HOST}:{chosen}")
    try:
        version = redis_info(address).get("redis_version", "unknown")
    except (OSError, ValueError) as exc:
        process.stop()
        raise ServiceError(f"redis on {_HOST}:{chosen} answered PING but not INFO: {exc}") from exc
    url = f"redis://{_HOST}:{chosen}/0"
    logger.info("redis started url=%s version=%s aof=%s pid=%d", url, version, aof, process.pid)
    return LocalRedis(url, version, chosen, process, work_dir)
