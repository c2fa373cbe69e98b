"""Offline quality experiments for the model: the handbook protocol on simulated data.

``python -m bench.quality.replay`` computes the production features (the in-memory feature store,
labels applied behind an event-time watermark) once and caches them; ``bench.quality.learn``
replays them through a selectable River model with delayed labels and scores the handbook
protocol; ``bench.quality.cost`` measures per-call model costs.
"""
