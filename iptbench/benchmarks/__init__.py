"""Benchmark test sets: the registry (Set5 ... Rain100L), folder layouts, `mini`, fetching and verifying.

May import iptbench.images, io, errors, tasks, ops and degradations; never pairs, evaluation, train or models.
"""
