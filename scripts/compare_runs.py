"""Compares two runs' tables customer by customer: `patronage run` against a partitioned run.

  compare_runs.py SINGLE_OUT OTHER_OUT AS_OF [--rejected-by-content]

Every table of SINGLE_OUT for AS_OF must be in OTHER_OUT with the same rows (in any order,
across any number of parts) and the same values, bit for bit. With --rejected-by-content the
`rejected` rows are compared without their file and row (a partitioned input names its own
files). Exits 1 on a difference, printing the first differing rows.
"""
import glob
import os
import sys

import polars as pl


def main():
    single, other, as_of = sys.argv[1:4]
    by_content = "--rejected-by-content" in sys.argv
    bad = 0
    for d in sorted(glob.glob(os.path.join(single, "*", f"run_date={as_of}"))):
        table = os.path.basename(os.path.dirname(d))
        a = pl.read_parquet(os.path.join(d, "*.parquet"))
        b = pl.read_parquet(os.path.join(other, table, f"run_date={as_of}", "*.parquet"))
        if table == "rejected" and by_content:
            a, b = a.drop("source_file", "source_row"), b.drop("source_file", "source_row")
        a, b = a.sort(a.columns, nulls_last=True), b.sort(b.columns, nulls_last=True)
        same = a.equals(b)
        print(f"{'same' if same else 'DIFFERENT'}: {table} {a.shape} vs {b.shape}")
        if not same:
            bad += 1
            if a.shape == b.shape:
                for c in a.columns:
                    if not a[c].equals(b[c]):
                        k = next(i for i in range(a.height) if a[c][i] != b[c][i])
                        print(f"  column {c}, row {k}: {a[c][k]!r} vs {b[c][k]!r}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
