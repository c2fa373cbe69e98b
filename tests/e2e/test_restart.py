"""`fraudstream detect` killed with SIGKILL and started again: it restores its last checkpoint
(nothing learned before that checkpoint is lost) and refuses a tampered one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.procs import detector_env
from fraudstream.settings import KafkaSettings, TopicSettings
from fraudstream.simulator import SimulatorConfig, iter_records, simulate
from fraudstream.stream.publish import Publisher, publish_stream

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def _newest_manifest(directory: Path) -> dict[str, int] | None:
    manifests = sorted(directory.glob("*.json"))
    if not manifests:
        return None
    data: dict[str, int] = json.loads(manifests[-1].read_text())
    return data


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "fraudstream", "detect", "--metrics-port", "0"],
            env=env, stderr=fh,
        )  # fmt: skip


def test_a_killed_detector_restores_its_last_checkpoint_and_refuses_a_tampered_one(
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    tmp_topics: Callable[..., TopicSettings],
    tmp_path: Path,
) -> None:
    topics = tmp_topics()
    records = list(iter_records(simulate(SimulatorConfig(customers=200, terminals=400, days=20))))
    publish_stream(records, Publisher(KafkaSettings(bootstrap=kafka_bootstrap)), topics,
                   rate=None, label_delay_ms=86_400_000)  # fmt: skip
    checkpoints = tmp_path / "checkpoints"
    env = detector_env(
        kafka_bootstrap, redis_url, redis_prefix, topics,
        model_negative_rate="1.0", model_checkpoint_dir=str(checkpoints),
        model_checkpoint_every_ms="200", model_checkpoint_key="test-key",
    )  # fmt: skip
    first = _start(env, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            manifest = _newest_manifest(checkpoints)
            if manifest is not None and manifest["updates"] > 100:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint with learning written in time")
    finally:
        first.send_signal(signal.SIGKILL)  # no shutdown checkpoint: what a crash leaves
        first.wait(30)
    assert first.returncode == -signal.SIGKILL
    manifest = _newest_manifest(checkpoints)
    assert manifest is not None
    second = _start(env, tmp_path / "second.log")
    try:
        deadline = time.monotonic() + 60
        log = ""
        while time.monotonic() < deadline and "restored model=" not in log:
            time.sleep(0.2)
            log = (tmp_path / "second.log").read_text()
        expected = f"restored model=gam-u{manifest['updates']}-c{manifest['number']}"
        assert expected in log, log[-2000:]
        # Hot swap without a restart: SIGHUP reloads the newest checkpoint at the next batch.
        second.send_signal(signal.SIGHUP)
        more = [{**r, "transaction_id": f"more-{i}"} for i, r in enumerate(records[-20:])]
        publish_stream(more, Publisher(KafkaSettings(bootstrap=kafka_bootstrap)), topics,
                       rate=None, label_delay_ms=None)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "model swapped" not in log:
            time.sleep(0.2)
            log = (tmp_path / "second.log").read_text()
        assert "model swapped" in log, log[-2000:]
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0  # a clean stop: finish, flush, commit, checkpoint
    # Tamper with the newest checkpoint: the next start refuses it and says why.
    newest = sorted(checkpoints.glob("*.pkl"))[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    third = _start(env, tmp_path / "third.log")
    code = third.wait(60)
    assert code != 0
    assert "checkpoint" in (tmp_path / "third.log").read_text().lower()
