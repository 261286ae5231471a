"""Benchmark the demo world generator against plain CSV writing of the same number of rows.

    .venv/bin/python bench/demo_generate.py --scale medium --workers 2

Prints wall time, what was generated, rows per second, megabytes written, peak resident memory of
the parent and of the worker processes, and a same-run baseline: how fast ``csv.writer`` writes the
same number of constant rows, so the reader sees how far generation is from pure I/O.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lianjie.demo.generate import SCALES, generate_world

_CONSTANT_ROW = (
    "ZL20260501010012345", "sale", "", "2026-05-01T10:11:12+08:00", "offline", "SH001", "ZL00012",
    "ZL010012345", "13912345678", "", "", "1", "ZL100123", "1", "1290", "0", "1290", "wechat_pay",
)


def _peak_rss_mib(who: int) -> float:
    """Peak resident set size in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _bytes_under(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _csv_baseline(rows: int, directory: Path) -> float:
    """Rows per second of ``csv.writer`` writing ``rows`` constant rows to a file."""
    path = directory / "baseline.csv"
    began = time.perf_counter()
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for _ in range(rows):
            writer.writerow(_CONSTANT_ROW)
    seconds = time.perf_counter() - began
    path.unlink()
    return rows / seconds if seconds > 0 else 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small", choices=list(SCALES))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory, kept afterwards (default: a temp dir, deleted unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the generated world in the temp dir")
    parser.add_argument("--progress", action="store_true", help="show the progress bar")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="lianjie-bench-"))
    out = args.out or scratch / "world"
    try:
        began = time.perf_counter()
        report = generate_world(out, scale=args.scale, seed=args.seed, workers=args.workers,
                                show_progress=args.progress)
        wall = time.perf_counter() - began
        written = _bytes_under(out)
        parent_mib, child_mib = _peak_rss_mib(resource.RUSAGE_SELF), _peak_rss_mib(resource.RUSAGE_CHILDREN)
        rows = report.order_lines + report.events
        baseline = _csv_baseline(rows, scratch)
        workers = min(args.workers or os.cpu_count() or 1, SCALES[args.scale].parts)
        print(f"scale {args.scale}, seed {args.seed}, workers {args.workers or 'auto'}, parts "
              f"{SCALES[args.scale].parts}")
        print(f"wall seconds       {wall:12.1f}")
        print(f"customers          {report.customers:12,}")
        print(f"orders             {report.orders:12,}   (+ {report.refunds:,} refunds)")
        print(f"order lines        {report.order_lines:12,}")
        print(f"events             {report.events:12,}")
        print(f"rows/s             {report.rows_per_second:12,.0f}   (order lines + events)")
        print(f"MB written         {written / 1e6:12,.1f}")
        print(f"peak RSS parent    {parent_mib:12,.1f} MiB")
        print(f"peak RSS child     {child_mib:12,.1f} MiB   (largest worker; bound for all: "
              f"{parent_mib + workers * child_mib:,.0f} MiB)")
        print(f"csv.writer rows/s  {baseline:12,.0f}   (same {rows:,} rows, constant, one process)")
        print(f"generation / csv   {report.rows_per_second / baseline:12.2f}")
        if args.keep or args.out:
            print(f"kept               {out}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
