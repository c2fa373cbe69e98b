"""Entry point: ``python -m bench NAME [options]`` (also ``fraudstream bench NAME``).

``python -m bench all [--quick] [--input HANDBOOK.jsonl] [--out DIR]`` runs every scenario
(features, latency, throughput, quality) on one set of services into one results directory and
writes its ``README.md`` with every table; ``--quick`` is the seconds-long smoke run CI uses
(no speed asserted anywhere).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import features, latency, scale, throughput
from bench.quality import cost, learn, pipeline, replay, report
from bench.record import results_dir
from fraudstream import services
from fraudstream.simulator import SimulatorConfig, simulate, write_jsonl

_BENCHES: dict[str, Callable[[list[str]], int]] = {
    "features": features.main,
    "latency": latency.main,
    "throughput": throughput.main,
    "scale": scale.main,
    "quality": pipeline.main,
    "quality-replay": replay.main,
    "quality-offline": learn.main,
    "quality-cost": cost.main,
    "quality-report": report.main,
}
# The quick quality run: a small simulated month, scored over its last week.
_QUICK_DATA = SimulatorConfig(customers=300, terminals=600, days=40)
_QUICK_WINDOW = ["--test-start", "2018-05-01", "--test-end", "2018-05-08"]


def run_all(argv: list[str]) -> int:
    """Every scenario into one results directory; returns non-zero if any failed."""
    parser = argparse.ArgumentParser(prog="python -m bench all")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run (CI)")
    parser.add_argument(
        "--input", type=Path, default=None, help="quality run's transactions (default: simulated)"
    )
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    out = results_dir(args.out)
    quick = ["--quick"] if args.quick else []
    codes: dict[str, int] = {}
    with (
        services.running_services(os.environ) as endpoints,
        tempfile.TemporaryDirectory() as tmp,
    ):
        # One set of services for every scenario (each would otherwise start its own).
        os.environ["FRAUDSTREAM_KAFKA_BOOTSTRAP"] = endpoints.kafka_bootstrap
        os.environ["FRAUDSTREAM_REDIS_URL"] = endpoints.redis_url
        codes["features"] = features.main([*quick, "--out", str(out)])
        codes["latency"] = latency.main([*quick, "--out", str(out)])
        codes["throughput"] = throughput.main([*quick, "--out", str(out)])
        codes["scale"] = scale.main([*quick, "--out", str(out)])
        data = args.input
        if data is None:
            data = Path(tmp) / "transactions.jsonl"
            write_jsonl(simulate(_QUICK_DATA if args.quick else SimulatorConfig()), data)
        quality = ["--input", str(data), "--label-delay", "7d", "--results", str(out),
                   "--out", str(out / "RESULT.json"),
                   "--scores-out", str(Path(tmp) / "scores.jsonl")]  # fmt: skip
        codes["quality"] = pipeline.main(quality + (_QUICK_WINDOW if args.quick else []))
    tables = [f"# fraudstream benchmarks{' (quick: smoke only)' if args.quick else ''}\n"]
    for name in ("features", "latency", "throughput", "scale", "quality"):
        md = out / f"{name}.md"
        status = "ok" if codes[name] == 0 else f"FAILED (exit {codes[name]})"
        body = md.read_text() if md.exists() else "(no table)\n"
        tables.append(f"## {name}: {status}\n\n{body}")
    (out / "README.md").write_text("\n".join(tables))
    print(f"all results in {out}")
    return max(codes.values())


def main(argv: list[str]) -> int:
    """Run the benchmark named by the first argument."""
    if argv and argv[0] == "all":
        return run_all(argv[1:])
    if not argv or argv[0] not in _BENCHES:
        names = ",".join(["all", *_BENCHES])
        print(f"usage: python -m bench {{{names}}} [options]", file=sys.stderr)
        return 2
    return _BENCHES[argv[0]](argv[1:])


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: the services a run started are stopped


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    raise SystemExit(main(sys.argv[1:]))
