"""A downstream alerting consumer: print each Flag (score, reasons, model version) as it arrives.

    eval "$(.venv/bin/fraudstream services up)"    # or the bootstrap the demo prints
    .venv/bin/python examples/read_flags.py [--topic flags] [--from-beginning]

A plain confluent-kafka consumer, independent of fraudstream's code: this is all an alerting
system needs to read the contract (see the README's event schemas).
"""

from __future__ import annotations

import argparse
import os
import uuid

import orjson
from confluent_kafka import Consumer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("FRAUDSTREAM_KAFKA_BOOTSTRAP"))
    parser.add_argument("--topic", default="flags")
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--max", type=int, default=0, help="stop after this many (0: never)")
    args = parser.parse_args()
    if not args.bootstrap:
        parser.error("set FRAUDSTREAM_KAFKA_BOOTSTRAP or pass --bootstrap")
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"read-flags-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        }
    )
    consumer.subscribe([args.topic])
    seen = 0
    try:
        while not args.max or seen < args.max:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            flag = orjson.loads(msg.value() or b"{}")
            reasons = ", ".join(f"{r['feature']}={r['value']:g}" for r in flag["reasons"])
            print(
                f"ALERT tx={flag['transaction_id']} card={flag['card_id']} "
                f"score={flag['score']:.3f} model={flag['model_version']} reasons: {reasons}",
                flush=True,
            )
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
