"""Aggregation, statistics and the static HTML report built from stored results."""
