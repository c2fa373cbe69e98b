"""One typed, frozen settings tree, built once from ``FRAUDSTREAM_*`` variables and CLI flags.

Only :mod:`fraudstream.cli` builds it; every other module receives the sub-settings it needs.
No module reads ``os.environ``: :meth:`Settings.from_env` takes the mapping as an argument.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from fraudstream.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_TIMESTAMP_MS",
    "DEFAULT_MIN_TIMESTAMP_MS",
    "ENV_FIELDS",
    "ENV_PREFIX",
    "SECTIONS",
    "DetectorSettings",
    "FeatureSettings",
    "Guarantee",
    "KafkaSettings",
    "LimitSettings",
    "ModelSettings",
    "RedisSettings",
    "Role",
    "Secret",
    "Settings",
    "TopicSettings",
    "field_type",
    "redact_url",
]

ENV_PREFIX = "FRAUDSTREAM_"
# at-least-once: offsets stored once the outputs are delivered (after a crash, outputs may repeat
# with the same transaction id); exactly-once: outputs and offsets in one Kafka transaction.
Guarantee = Literal["at-least-once", "exactly-once"]
# all: score and learn in one process; scorer: score, follow the model versions a trainer
# publishes; trainer: learn from the labels, publish model versions.
Role = Literal["all", "scorer", "trainer"]
# 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z: older or later event times are data errors,
# not transactions (a unit mix-up, seconds sent as milliseconds, or a corrupt field).
DEFAULT_MIN_TIMESTAMP_MS = 946_684_800_000
DEFAULT_MAX_TIMESTAMP_MS = 4_102_444_800_000


def redact_url(url: str) -> str:
    """A URL fit for logs and messages: the password, if any, replaced by ``***``.

    >>> redact_url("rediss://app:pw@cache:6380/0"), redact_url("redis://cache:6379/0")
    ('rediss://app:***@cache:6380/0', 'redis://cache:6379/0')
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or logs.

    >>> s = Secret("hunter2")
    >>> s, str(s), s.get()
    (Secret('***'), '***', 'hunter2')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """Return the secret value; call it only where the value is handed to a client."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """Kafka topic names; every topic fraudstream reads or writes is named here."""

    transactions: str = "transactions"
    labels: str = "labels"
    scores: str = "scores"
    flags: str = "flags"
    dead_letters: str = "transactions.dlq"
    # Compacted, one partition: the trainer role publishes model versions, scorers follow it.
    models: str = "models"

    def names(self) -> list[str]:
        """Every topic, for creating or deleting them together.

        >>> TopicSettings().names()
        ['transactions', 'labels', 'scores', 'flags', 'transactions.dlq']
        """
        return [self.transactions, self.labels, self.scores, self.flags, self.dead_letters]


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach Kafka. ``extra`` passes any librdkafka setting through unchanged."""

    bootstrap: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    sasl_password: Secret | None = None


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """How to reach Redis: a ``redis://`` or ``rediss://`` URL, the password kept apart."""

    url: str | None = None
    password: Secret | None = None
    key_prefix: str = "fs"
    cluster: bool = False  # the URL names any node of a Redis Cluster
    # A paused or unreachable Redis fails a call after this long (connect and read), and the
    # detector falls back to transaction-local features instead of stalling.
    timeout_ms: int = 250
    # Wait for the feature script's reply by polling the socket for up to this long before
    # blocking (single Redis). A blocked thread wakes up tens of microseconds after the reply
    # arrives on a virtual machine; polling saves that, and keeps a core busy while it waits.
    busy_poll_us: int = 0

    def __post_init__(self) -> None:
        # the poll comes before the blocking read that honours the timeout: keep it shorter
        if self.timeout_ms <= 0 or not 0 <= self.busy_poll_us < self.timeout_ms * 1000:
            raise ConfigError(
                f"expected timeout_ms > 0 and 0 <= busy_poll_us < timeout_ms * 1000; got "
                f"timeout_ms={self.timeout_ms} and busy_poll_us={self.busy_poll_us}"
            )


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Input limits; a record outside them is dead-lettered with a reason."""

    max_record_bytes: int = 64 * 1024
    max_id_chars: int = 128
    max_amount: float = 1_000_000_000.0
    min_timestamp_ms: int = DEFAULT_MIN_TIMESTAMP_MS
    max_timestamp_ms: int = DEFAULT_MAX_TIMESTAMP_MS
    default_currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.max_record_bytes <= 0 or self.max_id_chars <= 0:
            raise ConfigError(
                f"limits must be positive; got max_record_bytes={self.max_record_bytes}, "
                f"max_id_chars={self.max_id_chars}"
            )
        if self.min_timestamp_ms >= self.max_timestamp_ms:
            raise ConfigError(
                f"expected min_timestamp_ms < max_timestamp_ms; got {self.min_timestamp_ms} "
                f">= {self.max_timestamp_ms}"
            )
        if len(self.default_currency) != 3 or not self.default_currency.isalpha():
            raise ConfigError(
                f"expected a 3-letter ISO 4217 default currency; got {self.default_currency!r}"
            )


@dataclass(frozen=True, slots=True)
class FeatureSettings:
    """Rolling-aggregate engine: label delay, lateness, caps and TTLs (milliseconds)."""

    label_delay_ms: int = 7 * 86_400_000
    allowed_lateness_ms: int = 86_400_000
    exact_cap: int = 512
    fold_bucket_ms: int = 3_600_000
    entity_ttl_ms: int = 40 * 86_400_000
    record_ttl_ms: int = 30 * 86_400_000


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """The run loop: consumer group, batching, latency budget and the metrics endpoint."""

    group_id: str = "fraudstream-detector"
    batch_size: int = 500
    poll_timeout_ms: int = 5
    budget_us: int = 1000
    summary_every_s: float = 10.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    create_topics: bool = True
    partitions: int = 3
    # Event-time alignment of the inputs (stream/align.py): transactions processed in event-time
    # order across partitions (within the skew) and never ahead of the labels due by then.
    align_inputs: bool = True
    max_event_skew_ms: int = 21_600_000
    max_label_lag_ms: int = 60_000  # transactions may run this far ahead of unread labels
    idle_source_ms: int = 5000  # an input silent this long holds back no other
    label_interval_ms: int = 100  # labels are read at most this often (unless batches are full)
    guarantee: Guarantee = "at-least-once"
    role: Role = "all"
    # This process's stable name (a pod name): unique among running processes, the same across
    # restarts. Set, the consumers use static group membership with it (a restart takes its
    # partitions back at once); exactly-once names its transactional id after it (else after
    # the host name).
    instance_id: str = ""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.budget_us < 1:
            raise ConfigError(
                f"expected batch_size >= 1 and budget_us >= 1; got {self.batch_size}, "
                f"{self.budget_us}"
            )
        if self.label_interval_ms < 0:
            raise ConfigError(f"expected label_interval_ms >= 0; got {self.label_interval_ms}")
        if self.guarantee not in get_args(Guarantee):
            raise ConfigError(
                f"expected guarantee at-least-once or exactly-once; got {self.guarantee!r}"
            )
        if self.role not in get_args(Role):
            raise ConfigError(f"expected role all, scorer or trainer; got {self.role!r}")


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """The online model: pipeline, learning, decisions and checkpoints."""

    name: str = "gam"
    negative_rate: float = 0.1
    seed: int = 42
    threshold: float = 0.5
    alert_share: float = 0.0  # > 0: flag the top share of scores instead of a fixed threshold
    reasons: int = 3
    explain_all: bool = False  # reasons on every Score, not only on flagged ones (costs ~30 us)
    implicit_negative_after_ms: int = 0  # > 0: unlabelled transactions learned as genuine
    checkpoint_dir: str = ""  # empty: no checkpoints
    checkpoint_every_ms: int = 300_000
    checkpoint_keep: int = 20
    checkpoint_key: Secret | None = None  # HMAC key; checkpoints are refused if it mismatches
    publish_every_ms: int = 2000  # trainer role: how often a changed model is published

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 <= self.alert_share < 1.0:
            raise ConfigError(
                f"expected threshold in [0, 1] and alert_share in [0, 1); got {self.threshold}, "
                f"{self.alert_share}"
            )


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration of one fraudstream process."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    model: ModelSettings = field(default_factory=ModelSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from ``FRAUDSTREAM_*`` variables, then apply ``overrides``.

        Overrides are ``section__field=value`` keyword arguments (CLI flags); a ``None`` value
        means "not given" and leaves the environment's value in place.

        >>> s = Settings.from_env({"FRAUDSTREAM_TOPIC_SCORES": "s2"}, kafka__bootstrap="k:9092")
        >>> s.topics.scores, s.kafka.bootstrap
        ('s2', 'k:9092')
        """
        values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        extra: dict[str, str] = {}
        for key, raw in env.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key[len(ENV_PREFIX) :]
            if name.startswith("KAFKA_CONFIG_"):
                # FRAUDSTREAM_KAFKA_CONFIG_SECURITY_PROTOCOL=SSL -> security.protocol=SSL
                extra[name[len("KAFKA_CONFIG_") :].lower().replace("_", ".")] = raw
                continue
            target = ENV_FIELDS.get(name)
            if target is not None:
                section, fname = target
                values[section][fname] = _coerce(cls, section, fname, raw, key)
        for key, value in overrides.items():
            if value is None:
                continue
            section, _, fname = key.partition("__")
            if section not in values or not fname:
                raise ConfigError(f"unknown setting override {key!r}")
            values[section][fname] = value
        if extra:
            merged = dict(extra)
            merged.update(values["kafka"].get("extra", {}))
            values["kafka"]["extra"] = merged
        try:
            return cls(**{name: SECTIONS[name](**kw) for name, kw in values.items()})
        except TypeError as exc:
            raise ConfigError(f"invalid setting: {exc}") from exc


SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaSettings,
    "redis": RedisSettings,
    "topics": TopicSettings,
    "limits": LimitSettings,
    "features": FeatureSettings,
    "detector": DetectorSettings,
    "model": ModelSettings,
}
# Environment variable (without prefix) -> (section, field).
ENV_FIELDS: dict[str, tuple[str, str]] = {
    "KAFKA_BOOTSTRAP": ("kafka", "bootstrap"),
    "KAFKA_SASL_PASSWORD": ("kafka", "sasl_password"),
    "REDIS_URL": ("redis", "url"),
    "REDIS_PASSWORD": ("redis", "password"),
    "REDIS_KEY_PREFIX": ("redis", "key_prefix"),
    "REDIS_TIMEOUT_MS": ("redis", "timeout_ms"),
    "REDIS_CLUSTER": ("redis", "cluster"),
    "REDIS_BUSY_POLL_US": ("redis", "busy_poll_us"),
    "TOPIC_TRANSACTIONS": ("topics", "transactions"),
    "TOPIC_LABELS": ("topics", "labels"),
    "TOPIC_SCORES": ("topics", "scores"),
    "TOPIC_FLAGS": ("topics", "flags"),
    "TOPIC_DEAD_LETTERS": ("topics", "dead_letters"),
    "TOPIC_MODELS": ("topics", "models"),
    "MAX_RECORD_BYTES": ("limits", "max_record_bytes"),
    "MAX_ID_CHARS": ("limits", "max_id_chars"),
    "MAX_AMOUNT": ("limits", "max_amount"),
    "MIN_TIMESTAMP_MS": ("limits", "min_timestamp_ms"),
    "MAX_TIMESTAMP_MS": ("limits", "max_timestamp_ms"),
    "DEFAULT_CURRENCY": ("limits", "default_currency"),
    "LABEL_DELAY_MS": ("features", "label_delay_ms"),
    "ALLOWED_LATENESS_MS": ("features", "allowed_lateness_ms"),
    "EXACT_CAP": ("features", "exact_cap"),
    "FOLD_BUCKET_MS": ("features", "fold_bucket_ms"),
    "ENTITY_TTL_MS": ("features", "entity_ttl_ms"),
    "RECORD_TTL_MS": ("features", "record_ttl_ms"),
    "GROUP_ID": ("detector", "group_id"),
    "BATCH_SIZE": ("detector", "batch_size"),
    "POLL_TIMEOUT_MS": ("detector", "poll_timeout_ms"),
    "BUDGET_US": ("detector", "budget_us"),
    "SUMMARY_EVERY_S": ("detector", "summary_every_s"),
    "METRICS_HOST": ("detector", "metrics_host"),
    "METRICS_PORT": ("detector", "metrics_port"),
    "CREATE_TOPICS": ("detector", "create_topics"),
    "PARTITIONS": ("detector", "partitions"),
    "ALIGN_INPUTS": ("detector", "align_inputs"),
    "MAX_EVENT_SKEW_MS": ("detector", "max_event_skew_ms"),
    "MAX_LABEL_LAG_MS": ("detector", "max_label_lag_ms"),
    "IDLE_SOURCE_MS": ("detector", "idle_source_ms"),
    "LABEL_INTERVAL_MS": ("detector", "label_interval_ms"),
    "GUARANTEE": ("detector", "guarantee"),
    "ROLE": ("detector", "role"),
    "INSTANCE_ID": ("detector", "instance_id"),
    "MODEL_NAME": ("model", "name"),
    "MODEL_NEGATIVE_RATE": ("model", "negative_rate"),
    "MODEL_SEED": ("model", "seed"),
    "MODEL_THRESHOLD": ("model", "threshold"),
    "MODEL_ALERT_SHARE": ("model", "alert_share"),
    "MODEL_REASONS": ("model", "reasons"),
    "MODEL_EXPLAIN_ALL": ("model", "explain_all"),
    "MODEL_IMPLICIT_NEGATIVE_AFTER_MS": ("model", "implicit_negative_after_ms"),
    "MODEL_CHECKPOINT_DIR": ("model", "checkpoint_dir"),
    "MODEL_CHECKPOINT_EVERY_MS": ("model", "checkpoint_every_ms"),
    "MODEL_CHECKPOINT_KEEP": ("model", "checkpoint_keep"),
    "MODEL_CHECKPOINT_KEY": ("model", "checkpoint_key"),
    "MODEL_PUBLISH_EVERY_MS": ("model", "publish_every_ms"),
}


def field_type(section: str, fname: str) -> str:
    """A setting's annotated type, as written (``"int"``, ``"Secret | None"``).

    >>> field_type("redis", "busy_poll_us"), field_type("redis", "password")
    ('int', 'Secret | None')
    """
    return str({f.name: f.type for f in dataclasses.fields(SECTIONS[section])}[fname])


def _coerce(cls: type[Settings], section: str, fname: str, raw: str, env_key: str) -> Any:
    ftype = field_type(section, fname)
    if "Secret" in ftype:
        return Secret(raw)
    if ftype == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{env_key}: expected true or false; got {raw!r}")
    if ftype == "float":
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{env_key}: expected a number; got {raw!r}") from None
    if ftype == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{env_key}: expected an integer; got {raw!r}") from None
    return raw
