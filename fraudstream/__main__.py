"""`python -m fraudstream` runs the command line."""

from __future__ import annotations

from fraudstream.cli import main

raise SystemExit(main())
