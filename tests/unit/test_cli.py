"""Command-line parsing: durations and exit codes."""

from __future__ import annotations

import pytest

from fraudstream.cli import main, parse_duration_ms
from fraudstream.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "ms"),
    [("7d", 604_800_000), ("12h", 43_200_000), ("30m", 1_800_000), ("1.5s", 1500),
     ("250ms", 250), ("1d12h", 129_600_000)],
)  # fmt: skip
def test_durations_parse_to_milliseconds(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "7", "d7", "7 days", "1h-", "-1d"])
def test_malformed_durations_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="expected a duration"):
        parse_duration_ms(text)


def test_publish_without_bootstrap_exits_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAUDSTREAM_KAFKA_BOOTSTRAP", raising=False)
    code = main(["simulate", "--customers", "3", "--terminals", "5", "--days", "2",
                 "--publish", "--no-progress"])  # fmt: skip
    assert code == 2
    assert "FRAUDSTREAM_KAFKA_BOOTSTRAP" in capsys.readouterr().err


def test_every_setting_but_the_secrets_has_a_flag_that_overrides_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fraudstream.cli import _build_parser, _settings
    from fraudstream.settings import ENV_FIELDS

    monkeypatch.setenv("FRAUDSTREAM_MODEL_THRESHOLD", "0.6")
    parser = _build_parser()
    args = parser.parse_args(["detect", "--model-threshold", "0.75", "--align-inputs", "false"])
    settings = _settings(args)
    assert settings.model.threshold == 0.75  # the flag wins over the variable
    assert settings.detector.align_inputs is False
    with pytest.raises(SystemExit):
        parser.parse_args(["detect", "--help"])
    help_text = capsys.readouterr().out
    secrets = {"KAFKA_SASL_PASSWORD", "REDIS_PASSWORD", "MODEL_CHECKPOINT_KEY"}
    for name in ENV_FIELDS:
        if name not in secrets:
            assert f"FRAUDSTREAM_{name}]" in help_text, name
    for name in secrets:
        assert "--" + name.lower().replace("_", "-") not in help_text


def test_a_bad_setting_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["detect", "--model-threshold", "high"])
    assert code == 2
    assert "FRAUDSTREAM_MODEL_THRESHOLD" in capsys.readouterr().err


def test_model_signals_during_start_wait_for_the_runtime_instead_of_killing_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SIGHUP that arrives while the checkpoint is restored (inside ``app.build``) used to hit
    the default action and kill the detector; now the newest model request waits for the
    runtime."""
    import os
    import signal
    import threading
    from types import SimpleNamespace

    from fraudstream import app
    from fraudstream.stream import admin

    requested: list[str] = []
    ran: list[bool] = []

    def build(_settings: object) -> SimpleNamespace:
        os.kill(os.getpid(), signal.SIGHUP)  # as if sent while restoring
        os.kill(os.getpid(), signal.SIGUSR1)
        detector = SimpleNamespace(request=requested.append, scorer=SimpleNamespace(
            model=SimpleNamespace(version="test")))  # fmt: skip

        def run(stop: threading.Event) -> None:
            ran.append(not stop.is_set())

        return SimpleNamespace(detector=detector, metrics=None, health=None, run=run, failed=False)

    class Server:
        address = "127.0.0.1:0"

        def __init__(self, *_args: object) -> None: ...
        def start(self) -> Server:
            return self

        def stop(self) -> None: ...

    monkeypatch.setattr(app, "build", build)
    monkeypatch.setattr(admin, "wait_until_ready", lambda *_a, **_k: None)
    monkeypatch.setattr("fraudstream.stream.metrics.MetricsServer", Server)
    saved = {s: signal.getsignal(s) for s in
             (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)}  # fmt: skip
    try:
        code = main(["detect", "--kafka-bootstrap", "127.0.0.1:1", "--create-topics", "false"])
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
    assert code == 0
    assert requested == ["rollback"]  # the newest request wins, as in Detector.request
    assert ran == [True]
