"""fraudstream: real-time card-fraud detection on Kafka, Redis and an online River model."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
