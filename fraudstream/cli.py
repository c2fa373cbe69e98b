"""The command line: the only code that reads argv and the environment and configures logging.

``fraudstream simulate``  generate the handbook's transactions (to a file, or to Kafka at a rate)
``fraudstream services``  start, stop or show local Kafka and Redis for development and tests
``fraudstream detect``    the detector: consume transactions, score, publish scores and flags
``fraudstream demo``      local services + simulated payments + detector + feedback, live view
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from fraudstream import __version__
from fraudstream.errors import ConfigError, FraudstreamError
from fraudstream.settings import ENV_FIELDS, ENV_PREFIX, SECTIONS, Settings

__all__ = ["main", "parse_duration_ms"]

logger = logging.getLogger("fraudstream")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    """Parse a duration such as ``7d``, ``12h``, ``30m``, ``45s``, ``250ms`` or ``1d12h``.

    >>> parse_duration_ms("7d"), parse_duration_ms("1d12h"), parse_duration_ms("250ms")
    (604800000, 129600000, 250)
    """
    pos, total = 0, 0.0
    text = text.strip()
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ConfigError(f"expected a duration like 7d, 12h, 30m, 45s or 250ms; got {text!r}")
    return int(total)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE; got {text!r}")
    return key.strip(), value


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connections (flags override FRAUDSTREAM_* variables)")
    group.add_argument(
        "--kafka-bootstrap", help="Kafka bootstrap servers [FRAUDSTREAM_KAFKA_BOOTSTRAP]"
    )
    group.add_argument(
        "--kafka-config",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="any librdkafka setting, repeatable, e.g. security.protocol=SASL_SSL "
        "[FRAUDSTREAM_KAFKA_CONFIG_<KEY with _ for .>]",
    )
    group.add_argument("--redis-url", help="redis:// or rediss:// URL [FRAUDSTREAM_REDIS_URL]")
    group.add_argument(
        "--redis-timeout-ms", type=int,
        help="a Redis call fails after this long; the detector then scores with "
        "transaction-local features (default 100) [FRAUDSTREAM_REDIS_TIMEOUT_MS]",
    )  # fmt: skip
    group.add_argument("--topic-transactions", help="[FRAUDSTREAM_TOPIC_TRANSACTIONS]")
    group.add_argument("--topic-labels", help="[FRAUDSTREAM_TOPIC_LABELS]")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudstream",
        description="Real-time card-fraud detection: Kafka in, Redis rolling aggregates, "
        "an online River model, scores and flags out.",
    )
    parser.add_argument("--version", action="version", version=f"fraudstream {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser(
        "simulate",
        help="generate the Fraud Detection Handbook's transactions",
        description="Generate transactions with the Fraud Detection Handbook's simulator. With "
        "the defaults it reproduces the book's published dataset exactly.",
    )
    book = sim.add_argument_group("the book's parameters")
    book.add_argument("--customers", type=int, default=5000)
    book.add_argument("--terminals", type=int, default=10000)
    book.add_argument("--days", type=int, default=183)
    book.add_argument("--start-date", type=date.fromisoformat, default=date(2018, 4, 1))
    book.add_argument("--seed", type=int, default=0, help="0 reproduces the book")
    extra = sim.add_argument_group("beyond the book (off by default)")
    extra.add_argument("--cnp-share", type=float, default=0.0, help="card-not-present share")
    extra.add_argument("--merchant-categories", action="store_true", help="add MCC codes")
    extra.add_argument("--locations", action="store_true", help="add lat/lon and country")
    extra.add_argument("--card-testing-rate", type=float, default=0.0, help="bursts per day")
    extra.add_argument("--stolen-card-rate", type=float, default=0.0, help="thefts per day")
    out = sim.add_argument_group("output")
    target = out.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", type=Path, help="write JSONL (Transaction + is_fraud)")
    target.add_argument("--publish", action="store_true", help="publish to Kafka")
    out.add_argument("--rate", type=float, help="with --publish: transactions per second")
    out.add_argument(
        "--label-delay",
        default="7d",
        help="with --publish: publish each label this long after its transaction, in event "
        "time (default 7d; 'none' publishes no labels)",
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    _connection_flags(sim)

    svc = sub.add_parser(
        "services",
        help="start, stop or show local Kafka and Redis",
        description="Local Kafka (KRaft) and Redis for development: from FRAUDSTREAM_* "
        "variables if set, else Docker containers when a Docker engine answers, else local "
        "processes. `up` prints FRAUDSTREAM_KAFKA_BOOTSTRAP=... lines for eval.",
    )
    svc.add_argument(
        "action",
        choices=["up", "down", "status", "fetch"],
        help="fetch: download the pinned Kafka jars into the cache now",
    )
    svc.add_argument("--state-dir", type=Path, default=Path(".fraudstream"))
    svc.add_argument("--cache-dir", type=Path, help="where the Kafka jars are kept")
    svc.add_argument("--redis-aof", action="store_true", help="run Redis with AOF persistence")
    det = sub.add_parser(
        "detect",
        help="run the detector",
        description="Consume transactions, compute features in Redis, score with the online "
        "model, publish a Score per transaction and a Flag per suspicious one, learn from "
        "labels. Stops cleanly on SIGTERM or Ctrl-C (finish the batch, flush, commit).",
    )
    _connection_flags(det)
    _detector_flags(det)
    _setting_flags(det)

    demo = sub.add_parser(
        "demo",
        help="the whole thing on this machine, with a live view",
        description="Start Kafka and Redis (FRAUDSTREAM_* variables, else Docker, else local "
        "processes), publish simulated payments at a steady rate with labels delayed, run the "
        "detector, and show live numbers until Ctrl-C, which stops everything it started.",
    )
    demo.add_argument("--rate", type=float, default=2000.0, help="transactions per second")
    demo.add_argument("--label-delay", default="7d", help="label delay in event time")
    demo.add_argument("--customers", type=int, default=5000)
    demo.add_argument("--days", type=int, default=183)
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    _detector_flags(demo)
    _setting_flags(demo)

    bench = sub.add_parser(
        "bench",
        help="benchmarks (from a source checkout): quality, features, ...",
        description="Run a benchmark of the `bench` package of a source checkout, e.g. "
        "`fraudstream bench quality --input TX.jsonl --label-delay 7d --out RESULT.json`.",
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="NAME [options]")
    return parser


def _detector_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("detector (flags override FRAUDSTREAM_* variables)")
    group.add_argument("--group-id", help="consumer group [FRAUDSTREAM_GROUP_ID]")
    group.add_argument(
        "--batch-size", type=int, help="max records per batch [FRAUDSTREAM_BATCH_SIZE]"
    )
    group.add_argument(
        "--budget-us", type=int, help="per-transaction budget, us [FRAUDSTREAM_BUDGET_US]"
    )
    group.add_argument(
        "--max-event-skew-ms",
        type=int,
        help="event-time skew allowed between input partitions [FRAUDSTREAM_MAX_EVENT_SKEW_MS]",
    )
    group.add_argument("--metrics-host", help="metrics bind address [FRAUDSTREAM_METRICS_HOST]")
    group.add_argument(
        "--metrics-port", type=int, help="metrics port, 0 = any [FRAUDSTREAM_METRICS_PORT]"
    )


def _setting_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every other setting, named after its variable: FRAUDSTREAM_MODEL_THRESHOLD is
    ``--model-threshold``. Secrets have none: a command line is visible to every local user."""
    names = ", ".join(ENV_PREFIX + name for name in _secret_names())
    parser.add_argument_group(
        "secrets (variables only, no flags)",
        f"{names}; or each as <NAME>_FILE, the path of a file that holds the value",
    )
    group = parser.add_argument_group("every other setting (flag overrides FRAUDSTREAM_<NAME>)")
    for name, (section, fname) in ENV_FIELDS.items():
        field = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == fname)
        if "Secret" in str(field.type):
            continue
        default = field.default if field.default is not dataclasses.MISSING else None
        try:
            group.add_argument(
                "--" + name.lower().replace("_", "-"), dest=f"env__{name}", metavar="VALUE",
                help=f"[{ENV_PREFIX}{name}] default {default!r}",
            )  # fmt: skip
        except argparse.ArgumentError:
            continue  # a hand-written flag above already covers it


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "kafka__bootstrap": getattr(args, "kafka_bootstrap", None),
        "redis__url": getattr(args, "redis_url", None),
        "redis__timeout_ms": getattr(args, "redis_timeout_ms", None),
        "topics__transactions": getattr(args, "topic_transactions", None),
        "topics__labels": getattr(args, "topic_labels", None),
        "detector__group_id": getattr(args, "group_id", None),
        "detector__batch_size": getattr(args, "batch_size", None),
        "detector__budget_us": getattr(args, "budget_us", None),
        "detector__max_event_skew_ms": getattr(args, "max_event_skew_ms", None),
        "detector__metrics_host": getattr(args, "metrics_host", None),
        "detector__metrics_port": getattr(args, "metrics_port", None),
    }
    pairs = getattr(args, "kafka_config", None)
    if pairs:
        overrides["kafka__extra"] = dict(pairs)
    # Generated flags are applied as their variables would be: same parsing, same checks.
    env = _with_secret_files(os.environ)
    for dest, value in vars(args).items():
        if dest.startswith("env__") and value is not None:
            env[ENV_PREFIX + dest[len("env__") :]] = value
    settings = Settings.from_env(env, **overrides)
    if "sasl.password" in settings.kafka.extra:  # plain config is shown in repr, and on `ps`
        raise ConfigError(
            "expected the SASL password in FRAUDSTREAM_KAFKA_SASL_PASSWORD (or its _FILE), a "
            "secret; got it as librdkafka config (FRAUDSTREAM_KAFKA_CONFIG_* or --kafka-config)"
        )
    return settings


def _secret_names() -> list[str]:
    """The variables (without prefix) that hold secrets: they have no flag, only a variable."""
    return [
        name
        for name, (section, fname) in ENV_FIELDS.items()
        if any(f.name == fname and "Secret" in str(f.type)
               for f in dataclasses.fields(SECTIONS[section]))
    ]  # fmt: skip


def _with_secret_files(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` where each ``FRAUDSTREAM_<SECRET>_FILE`` became ``<SECRET>``: the
    file's content, one trailing newline dropped (Docker and Kubernetes secrets are files).

    Raises:
        ConfigError: both the variable and its ``_FILE`` are set, or the file is unreadable
            or empty. The message names the variables and the path, never the content.
    """
    env = dict(environ)
    for name in _secret_names():
        key = ENV_PREFIX + name
        path = env.pop(key + "_FILE", None)
        if path is None:
            continue
        if key in env:
            raise ConfigError(f"expected one of {key} and {key}_FILE; got both")
        try:
            value = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{key}_FILE: cannot read {path!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{key}_FILE: {path!r} is not UTF-8 text") from None
        value = value.removesuffix("\n").removesuffix("\r")
        if not value:
            raise ConfigError(f"{key}_FILE: {path!r} is empty")
        env[key] = value
    return env


def _simulate(args: argparse.Namespace) -> int:
    from fraudstream.simulator import SimulatorConfig, iter_records, simulate, write_jsonl

    config = SimulatorConfig(
        customers=args.customers,
        terminals=args.terminals,
        days=args.days,
        start_date=args.start_date,
        seed=args.seed,
        cnp_share=args.cnp_share,
        merchant_categories=args.merchant_categories,
        locations=args.locations,
        card_testing_rate=args.card_testing_rate,
        stolen_card_rate=args.stolen_card_rate,
    )
    progress = not args.no_progress and sys.stderr.isatty()
    if args.output is not None:
        dataset = simulate(config, progress=progress)
        n = write_jsonl(dataset, args.output, progress=progress)
        logger.info("wrote transactions=%d path=%s", n, args.output)
        return 0
    from fraudstream.stream.publish import Publisher, publish_stream

    # Connect (and fail on bad settings) before spending time on generation.
    settings = _settings(args)
    delay = None if args.label_delay == "none" else parse_duration_ms(args.label_delay)
    publisher = Publisher(settings.kafka)
    dataset = simulate(config, progress=progress)
    stats = publish_stream(
        iter_records(dataset), publisher, settings.topics, rate=args.rate, label_delay_ms=delay
    )
    print(f"published transactions={stats.transactions} labels={stats.labels}", file=sys.stderr)
    return 0 if stats.failed == 0 else 1


def _services(args: argparse.Namespace) -> int:
    from fraudstream import services

    if args.action == "up":
        endpoints = services.services_up(
            os.environ, args.state_dir, cache_dir=args.cache_dir, redis_aof=args.redis_aof
        )
        print(services.export_lines(endpoints))
        return 0
    if args.action == "fetch":
        print(services.fetch_kafka_jars(os.environ, args.cache_dir), file=sys.stderr)
        return 0
    if args.action == "down":
        for line in services.services_down(args.state_dir, os.environ):
            print(line, file=sys.stderr)
        return 0
    status = services.services_status(args.state_dir, os.environ)
    print(status)
    return 0


def _detect(args: argparse.Namespace) -> int:
    from fraudstream import app
    from fraudstream.stream import admin
    from fraudstream.stream.metrics import MetricsServer
    from fraudstream.stream.models import MODEL_TOPIC_CONFIG

    settings = _settings(args)
    # Model operations without a restart, applied between batches: SIGHUP swaps in the newest
    # checkpoint (a version trained elsewhere, dropped into the directory), SIGUSR1 rolls back.
    # Handled from the first moment, not once the runtime is built: a SIGHUP sent while the
    # checkpoint is restored would otherwise kill the process (its default action). Until the
    # runtime exists the newest request waits in ``pending`` (a later one replaces it, as in
    # Detector.request). SIGTERM and SIGINT keep their defaults until then: a start that hangs
    # (a broker that never answers) stays interruptible.
    pending: str | None = None
    runtime: app.Runtime | None = None

    def on_model_signal(operation: str) -> Callable[[int, object], None]:
        def handler(_signum: int, _frame: object) -> None:
            nonlocal pending
            if runtime is None:
                pending = operation
            else:
                runtime.detector.request(operation)

        return handler

    model_signals = {signal.SIGHUP, signal.SIGUSR1}
    signal.signal(signal.SIGHUP, on_model_signal("reload"))
    signal.signal(signal.SIGUSR1, on_model_signal("rollback"))
    k = settings.kafka
    if settings.detector.create_topics:
        admin.create_topics(
            k.bootstrap or "",
            settings.topics.names(),
            settings.detector.partitions,
            extra_config=dict(k.extra),
            sasl_password=k.sasl_password,
        )
        if settings.detector.role != "all":  # compacted, one partition: the model versions
            admin.create_topics(
                k.bootstrap or "",
                [settings.topics.models],
                1,
                config=MODEL_TOPIC_CONFIG,
                extra_config=dict(k.extra),
                sasl_password=k.sasl_password,
            )
    else:  # the same login the loop will use, checked now: refused credentials fail at start
        admin.wait_until_ready(
            k.bootstrap or "", 30.0, dict(k.extra), sasl_password=k.sasl_password
        )
    built = app.build(settings)
    # Hand over with the model signals held back: one that arrives meanwhile is delivered after
    # the pending request, so the newest request wins.
    signal.pthread_sigmask(signal.SIG_BLOCK, model_signals)
    try:
        runtime = built
        if pending is not None:
            built.detector.request(pending)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, model_signals)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    d = settings.detector
    server = MetricsServer(built.metrics, built.health, d.metrics_host, d.metrics_port).start()
    logger.info("started metrics=http://%s/metrics model=%s", server.address,
                built.detector.scorer.model.version)  # fmt: skip
    try:
        built.run(stop)
    finally:
        server.stop()
    return 3 if built.failed else 0


def _demo(args: argparse.Namespace) -> int:
    from fraudstream.demo import DemoOptions, run_demo

    settings = _settings(args)
    if args.log_level == "INFO":
        logging.getLogger().setLevel(logging.WARNING)  # the live view replaces the log lines
    options = DemoOptions(
        rate=args.rate, label_delay_ms=parse_duration_ms(args.label_delay),
        customers=args.customers, days=args.days, duration_s=args.duration,
    )  # fmt: skip
    return run_demo(os.environ, settings, options)


def _bench(bench_args: list[str]) -> int:
    try:
        from bench.__main__ import main as bench_main
    except ImportError:
        print(
            "fraudstream: the benchmarks live in the source checkout's bench/ folder; run this "
            "from the repository root",
            file=sys.stderr,
        )
        return 2
    return bench_main(bench_args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code.

    Exit codes: 0 success, 1 a run that finished with failures, 2 bad configuration or usage,
    3 an infrastructure error (Kafka, Redis, a local service), 130 interrupted.
    """
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "detect":
            return _detect(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "bench":
            return _bench(args.bench_args)
        return _services(args)
    except ConfigError as exc:
        print(f"fraudstream: configuration error: {exc}", file=sys.stderr)
        return 2
    except FraudstreamError as exc:
        print(f"fraudstream: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
