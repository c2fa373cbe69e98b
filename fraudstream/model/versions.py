"""Model versions as signed messages: a trainer publishes them, scorers verify, then load them.

A published version is ``FSMV`` + a 4-byte header length + the header (JSON: name, updates,
number, size, SHA-256 of the pickle, publish time) + the HMAC-SHA256 of the header (32 bytes)
+ the pickle. A scorer checks the HMAC, then the size and hash of the pickle, and only then
unpickles: bytes from the topic are never executed unless the key signed them. The key is the
checkpoint key (``FRAUDSTREAM_MODEL_CHECKPOINT_KEY``), required for this role split.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
from dataclasses import dataclass

import orjson

from fraudstream.errors import ModelError
from fraudstream.model.online import FraudModel

__all__ = ["PublishedVersion", "pack_model", "unpack_model"]

_MAGIC = b"FSMV"
_LEN = struct.Struct(">I")
_MAC = 32


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    """A published version's header."""

    name: str
    updates: int
    number: int
    size: int
    sha256: str
    published_at_ms: int


def pack_model(model: FraudModel, key: bytes, number: int, now_ms: int) -> bytes:
    """Sign and serialise ``model`` as version ``number``; stamps the model with it.

    >>> m = FraudModel("logistic", 1.0, 0)
    >>> blob = pack_model(m, b"k", 3, 0)
    >>> unpack_model(blob, b"k").version == m.version, str(m.version)[:15]
    (True, 'logistic-u0-c3-')
    """
    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(data).hexdigest()
    info = PublishedVersion(model.name, model.updates, number, len(data), digest, now_ms)
    header = orjson.dumps(info, option=orjson.OPT_SORT_KEYS)
    mac = hmac.new(key, header, hashlib.sha256).digest()
    model.checkpoint, model.content_hash = number, digest
    return _MAGIC + _LEN.pack(len(header)) + header + mac + data


def unpack_model(blob: bytes, key: bytes) -> FraudModel:
    """Verify a published version and load it.

    Raises:
        ModelError: Not a published version, or its signature, size or hash does not verify.
    """
    if blob[:4] != _MAGIC or len(blob) < 8:
        raise ModelError("refused a model version: not a fraudstream model message")
    (n,) = _LEN.unpack_from(blob, 4)
    header, mac, data = blob[8 : 8 + n], blob[8 + n : 8 + n + _MAC], blob[8 + n + _MAC :]
    if not hmac.compare_digest(mac, hmac.new(key, header, hashlib.sha256).digest()):
        raise ModelError("refused a model version: the signature does not verify (wrong key?)")
    try:
        info = PublishedVersion(**orjson.loads(header))
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"refused a model version: unreadable header: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != info.size or not hmac.compare_digest(digest, info.sha256):
        raise ModelError(f"refused model version {info.number}: the model does not match its hash")
    model = pickle.loads(data)  # verified bytes only (HMAC over the header, hash of the body)
    if not isinstance(model, FraudModel):
        raise ModelError(f"refused model version {info.number}: not a FraudModel")
    model.checkpoint, model.content_hash = info.number, info.sha256
    return model
