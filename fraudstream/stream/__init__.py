"""Kafka in and out: client configuration, producers, the publish and run loops, dead letters.

The only package that imports ``confluent_kafka``. It may import ``fraudstream.events``,
``.errors`` and ``.settings``; never ``fraudstream.features`` or ``fraudstream.model``.
"""
