#!/usr/bin/env python3
"""Decodes an HdrHistogram interval log with the Python hdrhistogram package (an independent
reader: not rmap-trace's code) and prints, per tag, the total count and max as JSON.

Usage: decode_hlog.py FILE
"""
import json
import sys

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

# rmap-trace's histograms: 1 ns .. 1 hour, 3 significant digits.
LOWEST, HIGHEST, DIGITS = 1, 3_600_000_000_000, 3


def log2(h):
    """Counts per power of two of each recorded value (its bucket's lowest equivalent)."""
    buckets = {}
    for item in h.get_recorded_iterator():
        value = h.get_lowest_equivalent_value(item.value_iterated_to)
        i = max(value, 1).bit_length() - 1
        buckets[i] = buckets.get(i, 0) + item.count_added_in_this_iter_step
    return [buckets.get(i, 0) for i in range(max(buckets, default=-1) + 1)]


def main(path):
    reader = HistogramLogReader(path, HdrHistogram(LOWEST, HIGHEST, DIGITS))
    totals = {}
    intervals = 0
    while True:
        h = reader.get_next_interval_histogram()
        if h is None:
            break
        intervals += 1
        tag = h.get_tag() or ""
        if tag not in totals:
            totals[tag] = HdrHistogram(LOWEST, HIGHEST, DIGITS)
        totals[tag].add(h)
    out = {
        tag: {"count": t.get_total_count(), "max": t.get_max_value(), "log2": log2(t)}
        for tag, t in totals.items()
    }
    print(json.dumps({"intervals": intervals, "tags": out}))


if __name__ == "__main__":
    main(sys.argv[1])
