"""What the security tests share: a throwaway CA made with ``openssl``, and the secured Kafka
and Redis the fixtures start (their addresses, users and the client settings that log in)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fraudstream.services.local_kafka import SCRAM_MECHANISM
from fraudstream.settings import KafkaSettings, Secret

__all__ = [
    "KAFKA_USER",
    "KEY_PREFIX",
    "REDIS_ADMIN",
    "REDIS_USER",
    "Pki",
    "SecureKafka",
    "SecureRedis",
    "make_pki",
]

KAFKA_USER = "fraudstream"
REDIS_USER = "fraudstream"
REDIS_ADMIN = "admin"  # the tests' own user, to look at what the detector wrote
KEY_PREFIX = "sec"


@dataclass(frozen=True, slots=True)
class Pki:
    """A CA and a server certificate for 127.0.0.1 and localhost, signed by it (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(d: Path) -> Pki:
    """A throwaway CA and server certificate in ``d`` (P-256 keys, valid for two days)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl not found; install it (Debian: apt-get install openssl)")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=fraudstream test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
             cwd=d)  # fmt: skip
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
             cwd=d)  # fmt: skip
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key")


@dataclass(frozen=True, slots=True)
class SecureKafka:
    """The SASL_SSL listener's address and the client settings that log in to it."""

    bootstrap: str
    password: Secret
    ca: Path

    def client_extra(self, username: str = KAFKA_USER) -> dict[str, str]:
        """librdkafka settings, as ``FRAUDSTREAM_KAFKA_CONFIG_*`` would give them."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": username,
            "ssl.ca.location": str(self.ca),
        }

    def settings(self, password: Secret | None = None) -> KafkaSettings:
        return KafkaSettings(
            bootstrap=self.bootstrap,
            extra=self.client_extra(),
            sasl_password=password or self.password,
        )

    def env(self) -> dict[str, str]:
        """The detector's Kafka variables, the password excepted."""
        env = {f"FRAUDSTREAM_KAFKA_CONFIG_{k.upper().replace('.', '_')}": v
               for k, v in self.client_extra().items()}  # fmt: skip
        env["FRAUDSTREAM_KAFKA_BOOTSTRAP"] = self.bootstrap
        return env


@dataclass(frozen=True, slots=True)
class SecureRedis:
    """A TLS-only server: the ``rediss://`` URL (CA in its query) and two users' passwords."""

    url: str
    password: Secret  # REDIS_USER's: the detector's rights only
    admin_password: Secret

    def user_url(self, user: str = REDIS_USER) -> str:
        return self.url.replace("rediss://", f"rediss://{user}@", 1)
