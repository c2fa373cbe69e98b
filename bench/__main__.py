"""Entry point: ``python -m bench features [--redis-url URL] [--out PATH]``."""

from __future__ import annotations

import sys

from bench import features, latency, throughput
from bench.quality import cost, learn, pipeline, replay, report

_BENCHES = {
    "features": features.main,
    "latency": latency.main,
    "throughput": throughput.main,
    "quality": pipeline.main,
    "quality-replay": replay.main,
    "quality-offline": learn.main,
    "quality-cost": cost.main,
    "quality-report": report.main,
}


def main(argv: list[str]) -> int:
    """Run the benchmark named by the first argument."""
    if not argv or argv[0] not in _BENCHES:
        print(f"usage: python -m bench {{{','.join(_BENCHES)}}} [options]", file=sys.stderr)
        return 2
    return _BENCHES[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
