"""Simulated card transactions: the Fraud Detection Handbook's generator, and more.

With the default :class:`SimulatorConfig` this reproduces the dataset of Le Borgne et al.,
*Reproducible Machine Learning for Credit Card Fraud Detection - Practical Handbook* (2022),
chapter 3.2, transaction for transaction: 1,754,155 transactions, 14,681 frauds. Options
beyond the book (channel, merchant category, location, card testing, stolen cards) are off by
default and never change the book's random draws.

Allowed imports: numpy, orjson, tqdm, the standard library and :mod:`fraudstream.errors`.
Nothing here talks to Kafka, Redis or River.

Example:
    >>> ds = simulate(SimulatorConfig(customers=50, terminals=100, days=10))
    >>> first = next(iter_records(ds))
    >>> sorted(first)  # doctest: +NORMALIZE_WHITESPACE
    ['amount', 'card_id', 'fraud_scenario', 'is_fraud', 'terminal_id', 'timestamp',
     'transaction_id']
"""

from __future__ import annotations

from fraudstream.simulator.config import SimulatorConfig
from fraudstream.simulator.dataset import SimulatedDataset, simulate
from fraudstream.simulator.io import iter_records, read_jsonl, write_jsonl

__all__ = [
    "SimulatedDataset",
    "SimulatorConfig",
    "iter_records",
    "read_jsonl",
    "simulate",
    "write_jsonl",
]
