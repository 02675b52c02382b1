"""Reproduction reports: each module regenerates one report in ``reports/`` from scratch.

Run e.g. ``python -m neurosim.repro.sws``; every number in a report comes from that run.
"""
