"""What every benchmark result carries: machine facts, versions, git commit, and where it goes.

Results go to ``bench/results/<UTC timestamp>/`` (JSON, a Markdown table, PNG plots), so a run
never overwrites another and the README's table can name the run it came from.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil

__all__ = ["environment", "percentiles", "results_dir", "settings_from_env"]

RESULTS = Path(__file__).parent / "results"


def results_dir(out: Path | None = None) -> Path:
    """``out`` if given, else a new ``bench/results/<UTC timestamp>/``; created."""
    if out is None:
        out = RESULTS / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


_PER_RUN = ("REDIS_KEY_PREFIX", "GROUP_ID", "CREATE_TOPICS", "METRICS_PORT", "SUMMARY_EVERY_S")


def settings_from_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The ``FRAUDSTREAM_*`` settings set in the environment (the detectors a bench starts
    inherit them): what else shaped a run. Secrets, directories, endpoints and what every
    bench sets per run itself (key prefix, topics, group, metrics port) are left out; a value a
    bench passes its detectors (a batch size, a role; see its ``config``) wins over these.

    >>> settings_from_env({"FRAUDSTREAM_REDIS_BUSY_POLL_US": "2000", "FRAUDSTREAM_REDIS_PASSWORD":
    ...                    "pw", "FRAUDSTREAM_MODEL_CHECKPOINT_DIR": "/x", "HOME": "/root"})
    {'FRAUDSTREAM_REDIS_BUSY_POLL_US': '2000'}
    """
    from fraudstream.settings import ENV_FIELDS, ENV_PREFIX, field_type

    env = dict(os.environ) if env is None else env
    out = {}
    for name, (section, fname) in ENV_FIELDS.items():
        raw = env.get(ENV_PREFIX + name)
        hidden = (
            "Secret" in field_type(section, fname)
            or name.endswith(("_DIR", "_URL", "_BOOTSTRAP"))
            or name.startswith("TOPIC_")
            or name in _PER_RUN
        )
        if raw is not None and not hidden:
            out[ENV_PREFIX + name] = raw
    return out


def environment(**services: str) -> dict[str, Any]:
    """Machine facts, library versions, the services used, settings from the environment and
    the git commit."""
    import confluent_kafka

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m": os.getloadavg()[0],
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            "fraudstream": _version("fraudstream"),
            "river": _version("river"),
            "confluent-kafka": _version("confluent-kafka"),
            "librdkafka": confluent_kafka.libversion()[0],
            "redis-py": _version("redis"),
            "numpy": _version("numpy"),
        },
        "services": services,
        "settings": settings_from_env(),
        "git_commit": _git_commit(),
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max (nearest rank) of ``values``; NaN when empty.

    >>> percentiles([float(i) for i in range(1, 1001)])
    {'p50': 500.0, 'p90': 900.0, 'p99': 990.0, 'p99.9': 999.0, 'max': 1000.0}
    """
    if not values:
        nan = float("nan")
        return {"p50": nan, "p90": nan, "p99": nan, "p99.9": nan, "max": nan}
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(round(q * n, 9)) - 1)]

    return {
        "p50": rank(0.5),
        "p90": rank(0.9),
        "p99": rank(0.99),
        "p99.9": rank(0.999),
        "max": ordered[-1],
    }
