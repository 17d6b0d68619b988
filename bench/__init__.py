"""Benchmarks of what the split design costs, each cost against its baseline in the same run.

``python -m bench [--quick] [--only NAME,...] [--json PATH]``; see docs/performance.md.
"""
