"""Seconds per step of logging a run's metrics table, as the table grows: the appending ``Table``
of bench/training/sinks.py against the rewrite-whole table it replaced.

    python scripts/bench_tables.py
    python scripts/bench_tables.py --sizes 100 1000 10000 100000

A step adds one row of --columns float metrics (a real run logs about 60) to a table that already
holds N rows. ``Table`` writes only its open part (at most PART_ROWS rows), so its cost should not
grow with N; the rewrite-whole table, a copy of the code this change replaced, writes all N rows
every step. The appending table's figure is the mean over one part's cycle of adds (PART_ROWS of
them: the open part grows from 1 row to PART_ROWS); the rewrite-whole one's the mean of --repeats
adds. Compaction (``Table.close``, once at the end of a run) is timed at the largest size.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import pyarrow

from bench.training.sinks import PART_ROWS, Table
from common import write_atomically


class RewriteWhole:
    """The table before parts: every add writes every row, through a temporary file and os.replace."""

    def __init__(self, path: Path, rows: list[dict[str, Any]]) -> None:
        self.path, self.rows = path, list(rows)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)
        frame = pd.DataFrame(self.rows)
        write_atomically(self.path, lambda tmp: frame.to_parquet(tmp, index=False))


def metric_rows(start: int, count: int, columns: int, rng: random.Random) -> list[dict[str, Any]]:
    return [{"step": step, **{f"train/metric_{c:02d}": rng.random() for c in range(columns)}}
            for step in range(start, start + count)]


def seconds_per_add(table: Any, start: int, adds: int, columns: int, rng: random.Random) -> float:
    steps = [metric_rows(step, 1, columns, rng) for step in range(start, start + adds)]  # made before timing
    began = time.perf_counter()
    for rows in steps:
        table.add(rows)
    return (time.perf_counter() - began) / adds


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--columns", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5, help="adds timed for the rewrite-whole table")
    args = parser.parse_args(argv)
    rng = random.Random(0)
    print(f"one-row steps of {args.columns} float metrics; {os.cpu_count()} cores, pandas {pd.__version__}, "
          f"pyarrow {pyarrow.__version__}; PART_ROWS {PART_ROWS}")
    print(f"{'rows':>8}  {'appending s/add':>16}  {'rewrite-whole s/add':>20}  {'ratio':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            rows = metric_rows(0, size, args.columns, rng)
            appending = Table(Path(folder) / f"new-{size}" / "metrics.parquet")
            appending.rewrite(rows)  # a run's first N steps, compacted as a resume leaves them
            new = seconds_per_add(appending, size, PART_ROWS, args.columns, rng)
            whole = RewriteWhole(Path(folder) / f"old-{size}" / "metrics.parquet", rows)
            old = seconds_per_add(whole, size, args.repeats, args.columns, rng)
            print(f"{size:>8,}  {new:>16.5f}  {old:>20.5f}  {old / new:>6.1f}x")
        began = time.perf_counter()
        appending.close()  # the largest size's table: its rows and the parts of the timed adds
        print(f"compaction (Table.close) of {len(appending.rows):,} rows: {time.perf_counter() - began:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
