"""Model checkpoints in a directory: verified before unpickling, numbered, with rollback.

Each checkpoint is two files: ``model-00000007.pkl`` (the pickled :class:`FraudModel`) and
``model-00000007.json``, its manifest (number, name, updates, size, SHA-256 of the pickle and,
when a key is configured, an HMAC-SHA256 over all of it). The manifest is written last, so a
checkpoint without one is incomplete and ignored. Loading reads the manifest, checks the HMAC,
then the size and SHA-256 of the bytes, and only then unpickles: a tampered or corrupt file
raises :class:`~fraudstream.errors.ModelError` and is never executed.

Without a key the SHA-256 only detects corruption: anyone able to write the directory can
rewrite both files. Configure a key in production.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import orjson

from fraudstream.errors import ModelError
from fraudstream.model.online import FraudModel

__all__ = ["CheckpointInfo", "CheckpointSchedule", "CheckpointStore"]

logger = logging.getLogger(__name__)
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """One checkpoint's manifest."""

    number: int
    name: str
    updates: int
    size: int
    sha256: str
    saved_at_ms: int


@dataclass(slots=True)
class CheckpointSchedule:
    """Checkpoint every ``every_ms`` of (caller's) clock or every ``every_updates`` updates.

    >>> s = CheckpointSchedule(every_ms=1000, every_updates=10)
    >>> s.due(500, 3), s.due(1000, 3), s.due(0, 10)
    (False, True, True)
    """

    every_ms: int = 300_000
    every_updates: int = 100_000
    last_ms: int = 0
    last_updates: int = 0

    def due(self, now_ms: int, updates: int) -> bool:
        """Whether a checkpoint is due."""
        return (
            now_ms - self.last_ms >= self.every_ms
            or updates - self.last_updates >= self.every_updates
        )

    def mark(self, now_ms: int, updates: int) -> None:
        """Record that a checkpoint was taken."""
        self.last_ms, self.last_updates = now_ms, updates


class CheckpointStore:
    """Save, list, verify-and-load and roll back checkpoints in ``directory``.

    Args:
        directory: Created if missing.
        key: HMAC key; when set, unsigned or wrongly signed checkpoints are refused.
        keep: Newest checkpoints kept; older ones are deleted after each save.
    """

    def __init__(self, directory: str | Path, key: bytes | None = None, keep: int = 20) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = key
        self.keep = max(1, keep)

    def save(self, model: FraudModel, now_ms: int) -> CheckpointInfo:
        """Write a new checkpoint of ``model`` and stamp the model with its number and hash."""
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        existing = self.numbers()
        number = (existing[-1] if existing else 0) + 1
        info = CheckpointInfo(
            number, model.name, model.updates, len(data), hashlib.sha256(data).hexdigest(), now_ms
        )
        _atomic_write(self._path(number, "pkl"), data)
        _atomic_write(self._path(number, "json"), self._manifest(info))
        model.checkpoint, model.content_hash = number, info.sha256
        logger.info("checkpoint saved number=%d version=%s", number, model.version)
        for old in existing[: max(0, len(existing) + 1 - self.keep)]:
            for ext in ("json", "pkl"):
                self._path(old, ext).unlink(missing_ok=True)
        return info

    def numbers(self) -> list[int]:
        """Numbers of the complete checkpoints (those with a manifest), ascending."""
        out = []
        for path in self.directory.glob("model-*.json"):
            stem = path.stem.removeprefix("model-")
            if stem.isdigit():
                out.append(int(stem))
        return sorted(out)

    def load(self, number: int | None = None) -> FraudModel:
        """Verify and load checkpoint ``number`` (default: the newest).

        Raises:
            ModelError: No checkpoint, or its manifest, signature, size or hash does not verify.
        """
        if number is None:
            numbers = self.numbers()
            if not numbers:
                raise ModelError(f"no checkpoint in {self.directory}")
            number = numbers[-1]
        info = self.verify_manifest(number)
        try:
            data = self._path(number, "pkl").read_bytes()
        except OSError as exc:
            raise ModelError(f"checkpoint {number}: cannot read the model file: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != info.size or not hmac.compare_digest(digest, info.sha256):
            raise ModelError(
                f"checkpoint {number}: refused, the model file does not match its manifest "
                f"(expected sha256 {info.sha256[:16]}..., got {digest[:16]}...); it was "
                "modified or corrupted; restore a known good checkpoint"
            )
        model = pickle.loads(data)  # verified bytes only (hash / HMAC above)
        if not isinstance(model, FraudModel):
            raise ModelError(f"checkpoint {number}: expected a FraudModel; got {type(model)}")
        model.checkpoint, model.content_hash = number, info.sha256
        logger.info("checkpoint loaded number=%d version=%s", number, model.version)
        return model

    def rollback(self, steps: int = 1) -> FraudModel:
        """Load the checkpoint ``steps`` before the newest (the next save gets a new number)."""
        numbers = self.numbers()
        if len(numbers) <= steps:
            raise ModelError(
                f"rollback: expected more than {steps} checkpoints; got {len(numbers)}"
            )
        return self.load(numbers[-1 - steps])

    def verify_manifest(self, number: int) -> CheckpointInfo:
        """Read checkpoint ``number``'s manifest and check its signature."""
        try:
            obj = orjson.loads(self._path(number, "json").read_bytes())
            info = CheckpointInfo(**{k: obj[k] for k in CheckpointInfo.__dataclass_fields__})
            signature = obj.get("hmac")
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ModelError(f"checkpoint {number}: unreadable manifest: {exc}") from exc
        if self._key is None:
            if signature is not None:
                raise ModelError(
                    f"checkpoint {number}: refused, it is signed but no checkpoint key is "
                    "configured"
                )
            return info
        if signature is None:
            raise ModelError(f"checkpoint {number}: refused, unsigned and a key is configured")
        if not hmac.compare_digest(str(signature), self._sign(info)):
            raise ModelError(
                f"checkpoint {number}: refused, the manifest signature does not verify (wrong "
                "key, or the manifest was modified)"
            )
        return info

    def _sign(self, info: CheckpointInfo) -> str:
        assert self._key is not None
        payload = orjson.dumps(info, option=orjson.OPT_SORT_KEYS)
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def _manifest(self, info: CheckpointInfo) -> bytes:
        obj = {"format": _FORMAT, **orjson.loads(orjson.dumps(info))}
        obj["hmac"] = self._sign(info) if self._key is not None else None
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def _path(self, number: int, ext: str) -> Path:
        return self.directory / f"model-{number:08d}.{ext}"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)  # readers see the old file or the whole new one, never a part
