"""Microbenchmarks: ``python -m bench <name> [options]``; results go under ``bench/results/``."""
