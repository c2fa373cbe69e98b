"""Raw-socket probes: Redis ``PING``/``INFO`` over RESP and a plain TCP connect.

The services package must not import redis-py (only ``fraudstream.features`` may), and a
readiness check needs nothing more than two RESP commands, so they are spoken here directly.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from fraudstream.errors import ConfigError
from fraudstream.settings import redact_url

__all__ = ["RedisAddress", "redis_info", "redis_ping", "tcp_open"]

_MAX_REPLY = 1 << 20


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where and how to reach a Redis server, parsed from a ``redis://`` URL.

    ``ca_file`` is the CA that signed a TLS server's certificate (the URL's ``ssl_ca_certs``,
    as redis-py reads it); without one the system's CAs are trusted.
    """

    host: str
    port: int
    unix_path: str | None = None
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """Parse ``redis://``, ``rediss://`` or ``unix://`` URLs.

        >>> a = RedisAddress.from_url("rediss://:s3cret@cache.internal:6380/0?ssl_ca_certs=/ca.pem")
        >>> a.host, a.port, a.tls, a.password, a.ca_file
        ('cache.internal', 6380, True, 's3cret', '/ca.pem')
        """
        parts = urlsplit(url)
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if parts.scheme == "unix":
            return cls("localhost", 0, parts.path, False, user, password)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            msg = f"expected a redis://, rediss:// or unix:// URL; got {redact_url(url)!r}"
            raise ConfigError(msg)
        try:
            port = parts.port or 6379
        except ValueError as exc:
            raise ConfigError(f"invalid port in Redis URL {redact_url(url)!r}") from exc
        ca_file = parse_qs(parts.query).get("ssl_ca_certs", [None])[0]
        return cls(parts.hostname, port, None, parts.scheme == "rediss", user, password, ca_file)


def tcp_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def redis_ping(address: RedisAddress, timeout_s: float = 1.0) -> bool:
    """Whether the server answers ``PING`` with ``+PONG`` (after ``AUTH`` when configured)."""
    try:
        with _connect(address, timeout_s) as sock:
            return _command(sock, "PING") == b"PONG"
    except (OSError, ValueError):
        return False


def redis_info(
    address: RedisAddress, section: str = "server", timeout_s: float = 2.0
) -> dict[str, str]:
    """Return the ``INFO <section>`` fields, e.g. ``redis_version``; raises ``OSError``."""
    with _connect(address, timeout_s) as sock:
        reply = _command(sock, "INFO", section)
    fields: dict[str, str] = {}
    for line in reply.decode("utf-8", errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            fields[key.strip()] = value.strip()
    return fields


@contextlib.contextmanager
def _connect(address: RedisAddress, timeout_s: float) -> Iterator[socket.socket]:
    if address.unix_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        sock.connect(address.unix_path)
    else:
        sock = socket.create_connection((address.host, address.port), timeout=timeout_s)
    try:
        if address.tls:
            context = ssl.create_default_context(cafile=address.ca_file)
            sock = context.wrap_socket(sock, server_hostname=address.host)
        if address.password is not None:
            user = (address.username,) if address.username else ()
            _command(sock, "AUTH", *user, address.password)
        yield sock
    finally:
        sock.close()


def _command(sock: socket.socket, *args: str) -> bytes:
    """Send one command and return the payload of a simple or bulk string reply."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    sock.sendall(b"".join(out))
    reader = sock.makefile("rb")
    try:
        line = reader.readline(_MAX_REPLY)
        if line.startswith(b"+"):
            return line[1:].rstrip(b"\r\n")
        if line.startswith(b"$"):
            size = int(line[1:])
            if size < 0:
                return b""
            data = reader.read(size + 2)
            return data[:size]
        raise ValueError(f"unexpected Redis reply {line[:200]!r}")
    finally:
        reader.close()
