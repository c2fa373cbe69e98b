"""A ``redis-server`` process on a free loopback port, optionally with an append-only file.

Optionally secured: TLS only (no plain port) and ACL users, the ``default`` user switched off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fraudstream.errors import ServiceError
from fraudstream.services.endpoints import REDIS_SERVER_ENV
from fraudstream.services.probe import RedisAddress, redis_info, redis_ping
from fraudstream.services.process import LocalProcess, free_ports, write_private
from fraudstream.settings import Secret

__all__ = ["LocalRedis", "RedisTls", "RedisUser", "start_local_redis"]

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"


# The starter's own user: readiness (PING) and the version (INFO), no keys, nothing else.
_PROBE_USER, _PROBE_RULES = "fraudstream-probe", "resetkeys resetchannels -@all +ping +info"


@dataclass(frozen=True, slots=True)
class RedisTls:
    """PEM files for a TLS-only server: its certificate, its key, the CA (``tls-ca-cert-file``).

    Clients are not asked for certificates (``tls-auth-clients no``): they prove who they are
    with an ACL user's password, sent inside TLS.
    """

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True, slots=True)
class RedisUser:
    """An ACL user: its name, password and rules (``~keys`` patterns and ``+commands``)."""

    name: str
    password: Secret
    rules: str


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
    tls: RedisTls | None = None,
    users: tuple[RedisUser, ...] = (),
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
        tls: serve TLS only, with these files; the URL is then ``rediss://`` and names the CA
            (``?ssl_ca_certs=``), as redis-py reads it.
        users: ACL users; with any, the ``default`` user is off, so every client logs in. The
            ACL file (``users.acl``, mode 0600) holds SHA-256 hashes, never the passwords.

    Raises:
        ServiceError: the binary is missing, the server exited (e.g. the port is taken) or it
            did not answer in time; the message names ``redis.log``.
    """
    binary = find_redis_server(env)
    data_dir = (work_dir / "data").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = work_dir.resolve() / "redis.log"
    chosen = port if port is not None else free_ports(1, _HOST)[0]
    listen = ["--port", str(chosen)]
    address = RedisAddress(_HOST, chosen)
    if tls is not None:
        ca = str(tls.ca.resolve())
        listen = ["--port", "0", "--tls-port", str(chosen), "--tls-auth-clients", "no",
                  "--tls-cert-file", str(tls.cert.resolve()),
                  "--tls-key-file", str(tls.key.resolve()), "--tls-ca-cert-file", ca]  # fmt: skip
        address = RedisAddress(_HOST, chosen, tls=True, ca_file=ca)
    argv = [
        binary,
        "--bind", _HOST,
        *listen,
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--logfile", "",
        "--save", "",
        "--appendonly", "yes" if aof else "no",
        "--appendfsync", "everysec",
    ]  # fmt: skip
    if users:
        probe = Secret(secrets.token_urlsafe(24))  # lives in this process only
        acl = _write_acl(work_dir.resolve(), (RedisUser(_PROBE_USER, probe, _PROBE_RULES), *users))
        argv += ["--aclfile", str(acl)]
        address = RedisAddress(_HOST, chosen, None, address.tls, _PROBE_USER, probe.get(),
                               address.ca_file)  # fmt: skip
    process = LocalProcess.spawn("redis", argv, env, log_file, detached=detached)
    process.wait_ready(lambda: redis_ping(address), timeout_s, f"PING on {_HOST}:{chosen}")
    try:
        version = redis_info(address).get("redis_version", "unknown")
    except (OSError, ValueError) as exc:
        process.stop()
        raise ServiceError(f"redis on {_HOST}:{chosen} answered PING but not INFO: {exc}") from exc
    url = f"redis://{_HOST}:{chosen}/0"
    if address.ca_file is not None:
        url = f"rediss://{_HOST}:{chosen}/0?ssl_ca_certs={quote(address.ca_file)}"
    logger.info("redis started url=%s version=%s aof=%s users=%d pid=%d",
                url, version, aof, len(users), process.pid)  # fmt: skip
    return LocalRedis(url, version, chosen, process, work_dir)


def _write_acl(work_dir: Path, users: tuple[RedisUser, ...]) -> Path:
    """``users.acl``: the default user off, each user with its password's SHA-256 and rules."""
    lines = ["user default off"]
    for user in users:
        digest = hashlib.sha256(user.password.get().encode()).hexdigest()
        lines.append(f"user {user.name} on #{digest} {user.rules}")
    return write_private(work_dir / "users.acl", "\n".join(lines) + "\n")
