"""Turn a simulated dataset into wire ``Transaction`` records and JSON Lines files.

A record is what the ``transactions`` topic carries (see :mod:`fraudstream.events`), plus the
ground truth ``is_fraud`` and ``fraud_scenario`` that the label stream is built from::

    {"transaction_id": "0", "card_id": "596", "terminal_id": "3156", "amount": 57.16,
     "timestamp": 1522540831000, "is_fraud": false, "fraud_scenario": 0}

``channel``, ``merchant_category``, ``country``, ``lat`` and ``lon`` appear, before
``is_fraud``, only when their option is on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import orjson
from numpy.typing import NDArray
from tqdm import tqdm

from fraudstream.simulator.dataset import SimulatedDataset

__all__ = ["iter_records", "read_jsonl", "write_jsonl"]

# Rows converted to Python objects at a time: large enough to amortise numpy calls, small
# enough that the short-lived records never pile up (which makes the garbage collector and
# the allocator slow).
_CHUNK = 65_536
_CHANNELS = np.array(["card_present", "card_not_present"], dtype=object)
_COORDINATE_DECIMALS = 5  # about one metre


def iter_records(dataset: SimulatedDataset) -> Iterator[dict[str, object]]:
    """Yield one wire record per transaction, in ``transaction_id`` (time) order.

    Args:
        dataset: The simulated transactions.

    Yields:
        A fresh dict per transaction; ``amount`` is rounded to 2 decimals, ``timestamp`` is
        integer epoch milliseconds (UTC).
    """
    for chunk in _chunks(dataset):
        keys = tuple(chunk)
        for row in zip(*chunk.values(), strict=True):
            yield dict(zip(keys, row, strict=True))


def write_jsonl(
    dataset: SimulatedDataset, destination: str | Path | BinaryIO, progress: bool = False
) -> int:
    """Write the records of ``dataset`` as JSON Lines (UTF-8, one record a line).

    Args:
        dataset: The simulated transactions.
        destination: A path (created or truncated) or a binary file opened for writing.
        progress: Show a progress bar on stderr.

    Returns:
        The number of records written.
    """
    if isinstance(destination, str | Path):
        with Path(destination).open("wb") as file:
            return _write(dataset, file, progress)
    return _write(dataset, destination, progress)


def read_jsonl(path: str | Path) -> Iterator[dict[str, object]]:
    """Yield the records of a JSON Lines file, skipping blank lines.

    Raises:
        orjson.JSONDecodeError: A line is not valid JSON.
    """
    with Path(path).open("rb") as file:
        for line in file:
            if line.strip():
                record: dict[str, object] = orjson.loads(line)
                yield record


def _write(dataset: SimulatedDataset, file: BinaryIO, progress: bool) -> int:
    dumps, option, write = orjson.dumps, orjson.OPT_APPEND_NEWLINE, file.write
    with tqdm(total=len(dataset), desc="jsonl", unit="tx", disable=not progress) as bar:
        for chunk in _chunks(dataset):
            keys = tuple(chunk)
            # Each line is written as soon as it is made, so its bytes are freed at once.
            for row in zip(*chunk.values(), strict=True):
                write(dumps(dict(zip(keys, row, strict=True)), option=option))
            bar.update(len(chunk["transaction_id"]))
    return len(dataset)


def _chunks(dataset: SimulatedDataset) -> Iterator[dict[str, list[object]]]:
    """Yield the record fields of consecutive row ranges as Python lists, in record order."""
    card_ids = _id_strings(len(dataset.customers))
    terminal_ids = _id_strings(len(dataset.terminals))
    timestamps = dataset.timestamp_ms
    for lo in range(0, len(dataset), _CHUNK):
        rows = slice(lo, lo + _CHUNK)
        hi = min(lo + _CHUNK, len(dataset))
        fields: dict[str, list[object]] = {
            "transaction_id": list(map(str, range(lo, hi))),
            "card_id": card_ids[dataset.customer[rows]].tolist(),
            "terminal_id": terminal_ids[dataset.terminal[rows]].tolist(),
            "amount": np.round(dataset.amount[rows], 2).tolist(),
            "timestamp": timestamps[rows].tolist(),
        }
        if dataset.card_not_present is not None:
            fields["channel"] = _CHANNELS[dataset.card_not_present[rows].astype(np.intp)].tolist()
        if dataset.merchant_category is not None:
            fields["merchant_category"] = dataset.merchant_category[rows].tolist()
        if dataset.country is not None:
            fields["country"] = dataset.country[rows].tolist()
        if dataset.lat is not None and dataset.lon is not None:
            fields["lat"] = np.round(dataset.lat[rows], _COORDINATE_DECIMALS).tolist()
            fields["lon"] = np.round(dataset.lon[rows], _COORDINATE_DECIMALS).tolist()
        fields["is_fraud"] = dataset.is_fraud[rows].tolist()
        fields["fraud_scenario"] = dataset.fraud_scenario[rows].tolist()
        yield fields


def _id_strings(n: int) -> NDArray[np.object_]:
    """Return ``str(i)`` for ``i`` in ``0..n-1`` as an object array, for fast fancy indexing.

    >>> _id_strings(3)[np.array([2, 0])].tolist()
    ['2', '0']
    """
    return np.array([str(i) for i in range(n)], dtype=object)
