"""Settings come from FRAUDSTREAM_* variables; flags override; secrets never show."""

from __future__ import annotations

import pytest

from fraudstream.errors import ConfigError
from fraudstream.settings import LimitSettings, Secret, Settings
from fraudstream.stream.config import client_config


def test_environment_sets_fields_and_flags_override_it() -> None:
    env = {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": "env:9092",
        "FRAUDSTREAM_REDIS_URL": "redis://env:6379/0",
        "FRAUDSTREAM_TOPIC_FLAGS": "alerts",
        "FRAUDSTREAM_MAX_ID_CHARS": "64",
        "UNRELATED": "x",
    }
    settings = Settings.from_env(env, kafka__bootstrap="flag:9092", redis__url=None)
    assert settings.kafka.bootstrap == "flag:9092"
    assert settings.redis.url == "redis://env:6379/0"
    assert settings.topics.flags == "alerts"
    assert settings.limits.max_id_chars == 64


def test_librdkafka_settings_pass_through_from_env_and_flags() -> None:
    env = {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": "k:9093",
        "FRAUDSTREAM_KAFKA_CONFIG_SECURITY_PROTOCOL": "SASL_SSL",
        "FRAUDSTREAM_KAFKA_CONFIG_SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUDSTREAM_KAFKA_SASL_PASSWORD": "s3cret",
    }
    settings = Settings.from_env(env, kafka__extra={"linger.ms": "1"})
    config = client_config(settings.kafka, "producer")
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["linger.ms"] == "1"
    assert config["sasl.password"] == "s3cret"
    assert "s3cret" not in repr(settings)


def test_secrets_hide_in_repr_and_str() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) + str(secret)
    assert secret.get() == "hunter2"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FRAUDSTREAM_MAX_ID_CHARS": "many"}, "FRAUDSTREAM_MAX_ID_CHARS: expected an integer"),
        ({"FRAUDSTREAM_MAX_AMOUNT": "lots"}, "FRAUDSTREAM_MAX_AMOUNT: expected a number"),
        ({"FRAUDSTREAM_DEFAULT_CURRENCY": "EURO"}, "expected a 3-letter ISO 4217"),
        ({"FRAUDSTREAM_MIN_TIMESTAMP_MS": "5", "FRAUDSTREAM_MAX_TIMESTAMP_MS": "4"}, "min_"),
        ({"FRAUDSTREAM_GUARANTEE": "exactly-twice"}, "at-least-once or exactly-once; got 'exac"),
        ({"FRAUDSTREAM_REDIS_BUSY_POLL_US": "-5"}, "timeout_ms=250 and busy_poll_us=-5"),
        ({"FRAUDSTREAM_REDIS_BUSY_POLL_US": "250000"}, r"busy_poll_us < timeout_ms \* 1000"),
    ],
)
def test_malformed_settings_raise_config_error_naming_the_value(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_missing_bootstrap_is_a_config_error_that_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="FRAUDSTREAM_KAFKA_BOOTSTRAP"):
        client_config(Settings().kafka, "consumer")


def test_limits_reject_non_positive_sizes() -> None:
    with pytest.raises(ConfigError):
        LimitSettings(max_record_bytes=0)


def test_the_guarantee_and_instance_id_come_from_env() -> None:
    env = {"FRAUDSTREAM_GUARANTEE": "exactly-once", "FRAUDSTREAM_INSTANCE_ID": "pod-1"}
    d = Settings.from_env(env).detector
    assert (d.guarantee, d.instance_id) == ("exactly-once", "pod-1")
    assert Settings().detector.guarantee == "at-least-once"
