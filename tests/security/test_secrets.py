"""Secrets come from FRAUDSTREAM_<NAME> or from the file FRAUDSTREAM_<NAME>_FILE names, never
both, and never show in help, in the settings' repr, or in a configuration error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraudstream.cli import _build_parser, _settings, main

SECRETS = {
    "KAFKA_SASL_PASSWORD": "kafka-pw-3c1f",
    "REDIS_PASSWORD": "redis-pw-9d2e",
    "MODEL_CHECKPOINT_KEY": "ckpt-key-77a0",
}


@pytest.fixture
def no_fraudstream_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No FRAUDSTREAM_* variable of the caller's shell: each test sets its own."""
    for name in list(os.environ):
        if name.startswith("FRAUDSTREAM_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_secret_files_fill_the_secrets_with_the_trailing_newline_dropped(
    no_fraudstream_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in SECRETS.items():
        path = tmp_path / name
        path.write_text(value + ("\r\n" if name == "REDIS_PASSWORD" else "\n"))
        no_fraudstream_env.setenv(f"FRAUDSTREAM_{name}_FILE", str(path))
    (tmp_path / "spaced").write_text(" padded secret \n\n")
    no_fraudstream_env.setenv("FRAUDSTREAM_MODEL_CHECKPOINT_KEY_FILE", str(tmp_path / "spaced"))
    settings = _settings(_build_parser().parse_args(["detect"]))
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get() == SECRETS["KAFKA_SASL_PASSWORD"]
    assert settings.redis.password is not None
    assert settings.redis.password.get() == SECRETS["REDIS_PASSWORD"]
    assert settings.model.checkpoint_key is not None
    # One newline dropped, nothing else: spaces and a second newline are the file's content.
    assert settings.model.checkpoint_key.get() == " padded secret \n"


def test_secrets_show_neither_in_the_settings_repr_nor_in_help(
    no_fraudstream_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in SECRETS.items():
        no_fraudstream_env.setenv(f"FRAUDSTREAM_{name}", value)
    no_fraudstream_env.setenv("FRAUDSTREAM_REDIS_URL", "rediss://app@cache:6380/0")
    settings = _settings(_build_parser().parse_args(["detect"]))
    assert settings.redis.password is not None  # the secrets were read ...
    text = repr(settings) + str(settings)
    assert "Secret('***')" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "FRAUDSTREAM_REDIS_PASSWORD" in help_text
    assert "_FILE" in help_text
    for value in SECRETS.values():  # ... and are shown nowhere
        assert value not in text
        assert value not in help_text


@pytest.mark.parametrize("name", list(SECRETS))
def test_a_secret_given_both_ways_is_a_configuration_error(
    no_fraudstream_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
) -> None:
    (tmp_path / "secret").write_text("from-the-file\n")
    no_fraudstream_env.setenv(f"FRAUDSTREAM_{name}", SECRETS[name])
    no_fraudstream_env.setenv(f"FRAUDSTREAM_{name}_FILE", str(tmp_path / "secret"))
    assert main(["detect"]) == 2
    err = capsys.readouterr().err
    assert f"expected one of FRAUDSTREAM_{name} and FRAUDSTREAM_{name}_FILE; got both" in err
    assert SECRETS[name] not in err
    assert "from-the-file" not in err


@pytest.mark.parametrize("content", [None, ""], ids=["missing", "empty"])
def test_a_missing_or_empty_secret_file_is_a_configuration_error_naming_it(
    no_fraudstream_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: str | None,
) -> None:
    path = tmp_path / "redis-password"
    if content is not None:
        path.write_text(content)
    no_fraudstream_env.setenv("FRAUDSTREAM_REDIS_PASSWORD_FILE", str(path))
    assert main(["detect"]) == 2
    err = capsys.readouterr().err
    assert "FRAUDSTREAM_REDIS_PASSWORD_FILE" in err
    assert str(path) in err


@pytest.mark.parametrize("how", ["variable", "flag"])
def test_a_sasl_password_given_as_plain_kafka_config_is_refused(
    no_fraudstream_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """Plain librdkafka config is no secret: it would show in repr(Settings) (and a flag in
    ``ps``), so the password must come through FRAUDSTREAM_KAFKA_SASL_PASSWORD."""
    argv = ["detect"]
    if how == "variable":
        no_fraudstream_env.setenv("FRAUDSTREAM_KAFKA_CONFIG_SASL_PASSWORD", "plain-pw-51b2")
    else:
        argv += ["--kafka-config", "sasl.password=plain-pw-51b2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "FRAUDSTREAM_KAFKA_SASL_PASSWORD" in err
    assert "plain-pw-51b2" not in err
