"""The River model: scoring, learning from delayed labels, versions and checkpoints.

The only package that imports ``river``. It may import ``fraudstream.events``, ``.errors`` and
``.settings``; never ``fraudstream.stream`` or ``fraudstream.features``.
"""
