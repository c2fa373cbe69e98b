"""Feature-engine throughput and per-batch latency against a real Redis server.

Takes Redis as the tests and the demo do (``--redis-url`` or FRAUDSTREAM_REDIS_URL, else
Docker, else a local ``redis-server`` started for the run), pre-loads 30 days of handbook-like
history, then times ``RedisFeatureStore.features_for`` for batch sizes 1, 10, 20, 50, 100 and
500 on fresh transactions that continue the stream: about ``--per-size`` (20,000) transactions
per size, the sweep repeated ``--repeats`` (3) times; throughput is the median repeat, shown with
its range. Prints a Markdown table and writes
``features.json``, ``features.md`` and ``features.png`` to ``bench/results/<timestamp>/`` (or
``--out``). Besides wall time it reports CPU microseconds per
transaction of Redis (``INFO cpu``, meaningful when the server is used by this run only) and of
this client: on a shared, loaded machine those move far less than throughput does.

``--busy-poll-us N`` has the timed store poll the socket for each reply for up to N µs before
blocking (``FRAUDSTREAM_REDIS_BUSY_POLL_US``). ``--floor`` times, after the same pre-load,
``bench/floor.lua`` instead of the engine: the same protocol and the same keys, but only the
five Redis calls any engine on this data model makes per transaction and no feature computed.
Its numbers are what this machine allows at best. ``--free-searches`` times, after the same
pre-load, the engine with every window search cut to one probe (see :func:`free_searches`):
wrong features, the engine's writes; its numbers bound what any faster search could give.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import redis

from bench.procs import redis_cpu as redis_cpu_seconds
from bench.record import environment, percentiles, results_dir
from fraudstream import services
from fraudstream.errors import ConfigError
from fraudstream.events import Label, Transaction
from fraudstream.features import FeatureConfig, RedisFeatureStore
from fraudstream.settings import Settings

BATCH_SIZES = (1, 10, 20, 50, 100, 500)
FLOOR_SCRIPT = Path(__file__).with_name("floor.lua")
T0 = 1_700_000_000_000
DAY_MS = 86_400_000


def _stream(n_cards: int, n_terms: int, per_day: int, seed: int) -> Iterator[Transaction]:
    """An endless handbook-like stream: ~per_day transactions a day, in time order."""
    rng = random.Random(seed)
    t, i = T0, 0
    gap = DAY_MS / per_day
    while True:
        t += int(rng.expovariate(1.0 / gap))
        card = rng.randrange(n_cards)
        term = (card * 7 + rng.randrange(75)) % n_terms  # ~75 terminals near each card
        yield Transaction(f"x{i}", f"c{card}", round(rng.uniform(1, 200), 2), t, f"t{term}")
        i += 1


# One probe at the upper bound the caller passes: what back() costs at the least.
_ONE_PROBE = """local function back(s, o, w, e, hi)
  if hi == 0 then return 0, 0 end
  local _, c = unpack('<dd', s, o + w * hi - w + 1)
  return hi, c
end
"""


def free_searches(source: str) -> str:
    """``engine.lua`` with its window search (``back``) cut to one probe at the given bound.

    An ablation, not an engine: the windows come out empty, so the features are wrong. On an
    in-order stream it writes exactly what the engine does (an in-order event's position is
    the log's end, which the one probe returns). Empty windows also skip reads an exact engine
    needs (two of the card sums' ``GETRANGE``s, the distinct-terminal and first-use scans), so
    its cost is below that of any exact engine with faster searches (cursors, indexes, better
    guesses): a bound, not a target.
    """
    start = source.index("local function back(")
    end = source.index("\nend\n", start) + len("\nend\n")
    return source[:start] + _ONE_PROBE + source[end:]


# run()'s ``script`` ablations: the engine's source -> the script timed instead
_ABLATIONS: dict[str, Callable[[str], str]] = {
    "floor": lambda _engine: FLOOR_SCRIPT.read_text(),
    "free-searches": free_searches,
}


class _AblatedStore(RedisFeatureStore):
    """The engine's client running an ablation of its script (same protocol and keys)."""

    def __init__(self, client: redis.Redis, config: FeatureConfig, busy_poll_us: int,
                 script: str) -> None:  # fmt: skip
        super().__init__(client, config, busy_poll_us=busy_poll_us)
        self._source = _ABLATIONS[script](self._source)


def run(url: str, warm_days: int, per_size: int, repeats: int = 3, own: bool = True,
        script: str = "engine", busy_poll_us: int = 0) -> list[dict[str, float]]:  # fmt: skip
    """Pre-load history, then time each batch size; returns one result row per size.

    Each size is timed on about ``per_size`` transactions (at least 40 batches), and the sweep
    over the sizes is repeated ``repeats`` times, so every size is measured at several points
    of the growing state and the machine's noise shows as a spread: throughput is the median
    of the repeats (with min and max), latency percentiles pool every batch of every repeat.

    ``own``: the server was started for this run, so it may be emptied first; on a server that
    was handed in, keys get a unique prefix instead and nothing else is touched.
    ``script``: ``engine``, or after the engine's pre-load (the state they read and write)
    ``floor`` (``floor.lua``) or ``free-searches`` (:func:`free_searches`).
    ``busy_poll_us``: the timed store polls for each reply this long before blocking.
    """
    client = redis.Redis.from_url(url)
    prefix = "bench"
    if own:
        client.flushdb()
    else:
        prefix = f"bench{random.randrange(1 << 30)}"
    store = RedisFeatureStore(client, FeatureConfig(key_prefix=prefix))
    stream = _stream(n_cards=5000, n_terms=10000, per_day=9600, seed=1)
    warm = [next(stream) for _ in range(warm_days * 9600)]
    for i in range(0, len(warm), 500):
        store.features_for(warm[i : i + 500])
        store.apply_labels([Label(tx.transaction_id, tx.amount > 190) for tx in warm[i : i + 500]])
    if script in _ABLATIONS:
        store = _AblatedStore(client, store.config, busy_poll_us, script)
    elif busy_poll_us:
        store = RedisFeatureStore(client, store.config, busy_poll_us=busy_poll_us)
    runs: dict[int, list[tuple[float, list[float], float, float]]] = {s: [] for s in BATCH_SIZES}
    for _ in range(repeats):
        for size in BATCH_SIZES:
            data = [[next(stream) for _ in range(size)] for _ in range(max(40, per_size // size))]
            store.features_for(data[0])  # warm the connection and the script
            lat = []
            redis_cpu = redis_cpu_seconds(client)
            client_cpu = time.process_time()
            start = time.perf_counter()
            for batch in data[1:]:
                t0 = time.perf_counter()
                store.features_for(batch)
                lat.append(time.perf_counter() - t0)
            total = time.perf_counter() - start
            n_tx = size * len(lat)
            runs[size].append((n_tx / total, lat, (redis_cpu_seconds(client) - redis_cpu) / n_tx,
                               (time.process_time() - client_cpu) / n_tx))  # fmt: skip
    client.close()
    rows = []
    for size, measured in runs.items():
        rates = sorted(r[0] for r in measured)
        pct = percentiles([x for r in measured for x in r[1]])
        rows.append(
            {
                "batch": size,
                "batches": sum(len(r[1]) for r in measured),
                "repeats": len(measured),
                "tx_per_s": statistics.median(rates),
                "tx_per_s_min": rates[0],
                "tx_per_s_max": rates[-1],
                "p50_ms": pct["p50"] * 1e3,
                "p99_ms": pct["p99"] * 1e3,
                "redis_cpu_us_per_tx": statistics.median(r[2] for r in measured) * 1e6,
                "client_cpu_us_per_tx": statistics.median(r[3] for r in measured) * 1e6,
            }
        )
    return rows


def _markdown(rows: list[dict[str, float]]) -> str:
    lines = [
        "| batch | tx/s (median) | tx/s min - max | p50 ms | p99 ms | Redis CPU us/tx "
        "| client CPU us/tx |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['batch']:.0f} | {r['tx_per_s']:,.0f} "
        f"| {r['tx_per_s_min']:,.0f} - {r['tx_per_s_max']:,.0f} "
        f"| {r['p50_ms']:.3f} | {r['p99_ms']:.3f} "
        f"| {r['redis_cpu_us_per_tx']:.1f} | {r['client_cpu_us_per_tx']:.1f} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    sizes = [r["batch"] for r in rows]
    ax.plot(sizes, [r["tx_per_s"] for r in rows], marker="o", label="throughput")
    ax.set_xscale("log")
    ax.set_xlabel("batch size (log)")
    ax.set_ylabel("transactions per second")
    ax2 = ax.twinx()
    ax2.plot(sizes, [r["p99_ms"] for r in rows], marker="s", color="tab:red", label="p99 batch")
    ax2.set_ylabel("p99 per batch (ms)")
    ax.set_title("Feature engine against redis-server")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    """CLI: run the benchmark; write features.json, features.md and features.png."""
    parser = argparse.ArgumentParser(prog="python -m bench features")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--warm-days", type=int, default=30)
    parser.add_argument(
        "--per-size", type=int, default=20000, help="transactions timed per batch size and repeat"
    )
    parser.add_argument("--repeats", type=int, default=3, help="sweeps over the batch sizes")
    ablation = parser.add_mutually_exclusive_group()
    ablation.add_argument(
        "--floor", action="store_const", const="floor", dest="script", default="engine",
        help="time bench/floor.lua (no features) instead",
    )  # fmt: skip
    ablation.add_argument(
        "--free-searches", action="store_const", const="free-searches", dest="script",
        help="time the engine with its window searches cut to one probe (wrong features)",
    )  # fmt: skip
    try:  # parsed and checked as the detector does
        poll_default = Settings.from_env(os.environ).redis.busy_poll_us
    except ConfigError as exc:
        parser.error(str(exc))
    parser.add_argument(
        "--busy-poll-us", type=int, default=poll_default,
        help="poll for each reply up to this long before blocking (default: "
        "FRAUDSTREAM_REDIS_BUSY_POLL_US, else 0)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run (CI)")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args(argv)
    if args.busy_poll_us < 0:
        parser.error(f"--busy-poll-us must be >= 0; got {args.busy_poll_us}")
    if args.quick:
        args.warm_days, args.per_size, args.repeats = 1, 400, 1
    env = dict(os.environ)
    if args.redis_url:
        env["FRAUDSTREAM_REDIS_URL"] = args.redis_url
    # The same resolution as tests and demo: FRAUDSTREAM_REDIS_URL, else Docker, else a local
    # redis-server started (and stopped) here.
    with services.running_redis(env) as endpoint:
        rows = run(
            endpoint.address,
            args.warm_days,
            args.per_size,
            args.repeats,
            own=endpoint.origin != "env",
            script=args.script,
            busy_poll_us=args.busy_poll_us,
        )
        version = endpoint.version
    table = _markdown(rows)
    print(table)
    out = results_dir(args.out)
    name = "features" if args.script == "engine" else f"features-{args.script}"
    if args.busy_poll_us:
        name += "-poll"
    doc = {
        "scenario": name,
        "config": {
            "warm_days": args.warm_days,
            "per_size": args.per_size,
            "repeats": args.repeats,
            "busy_poll_us": args.busy_poll_us,
            "quick": args.quick,
        },
        "environment": environment(redis=version),
        "rows": rows,
    }
    (out / f"{name}.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    (out / f"{name}.md").write_text(table)
    _plot(rows, out / f"{name}.png")
    print(f"results in {out}")
    return 0
