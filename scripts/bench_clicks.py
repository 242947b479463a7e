"""Clickstream race (see bench-clicks.sh): prepare the data, or time patronage and DuckDB.

  bench_clicks.py prepare CLICKS COPIES OUT_PARQUET
  bench_clicks.py race BINARY ORDERS_PARQUET CLICKS_PARQUET REPEATS
  bench_clicks.py duckdb ORDERS_PARQUET CLICKS_PARQUET OUT_PARQUET   (the peer, one process)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb

from engagement_sql import click_events, engagement_sql

AS_OF = "2024-12-31"
START = "2023-01-01"
WINDOW_DAYS = 730


def prepare(csv, copies, out):
    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count()}")
    window_us = WINDOW_DAYS * 86_400_000_000
    shift_us = (61 * 86_400 + 3_600) * 1_000_000
    con.execute(f"""
COPY (
  WITH base AS ({click_events(csv)})
  SELECT make_timestamp((epoch_us(TIMESTAMP '{START}')
           + (epoch_us(ts) - epoch_us(TIMESTAMP '{START}') + k.range * {shift_us}) % {window_us})::BIGINT)
           AS event_ts,
         customer_id, visitor_id, event_type, page_type, category
  FROM base, range({int(copies)}) k
  ORDER BY event_ts
) TO '{out}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)""")
    n = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    print(f"{n:,} events -> {out}", file=sys.stderr)


def peer(orders, clicks, out):
    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count()}")
    raw = f"""SELECT event_ts AS ts, customer_id, visitor_id, event_type, page_type, category
              FROM read_parquet('{clicks}')"""
    last = f"""SELECT customer_id, max(day) AS last_order_date FROM (
                 SELECT customer_id, CAST(TRY_CAST(order_ts AS TIMESTAMP) AS DATE) AS day, status
                 FROM read_parquet('{orders}'))
               WHERE coalesce(status, 'completed') = 'completed' AND day <= DATE '{AS_OF}'
               GROUP BY 1"""
    sql = engagement_sql(raw, last, AS_OF)
    con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")


def timed(cmd, repeats):
    """Median wall time and the largest peak RSS (GiB) of `cmd` run as a whole process."""
    walls, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"failed: {' '.join(cmd)}")
        peaks.append(usage.ru_maxrss / 2**20)
    return statistics.median(walls), walls, max(peaks)


def race(binary, orders, clicks, repeats):
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{clicks}')").fetchone()[0]
    groups = con.execute(f"SELECT count(DISTINCT row_group_id) FROM parquet_metadata('{clicks}')").fetchone()[0]
    print(f"data: {n:,} click events in {groups} row groups, {os.path.getsize(clicks) / 1e6:.0f} MB zstd Parquet "
          f"(timestamp + 5 string columns); orders {orders}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        ours = [binary, "run", "-q", "--no-models", "--no-clusters", "--orders", orders, "--clicks", clicks,
                "--out", os.path.join(tmp, "out"), "--as-of", AS_OF]
        theirs = [sys.executable, __file__, "duckdb", orders, clicks, os.path.join(tmp, "duck.parquet")]
        results = {
            "patronage run --no-models --no-clusters --clicks": timed(ours, repeats),
            "duckdb SQL (all threads)": timed(theirs, repeats),
        }
    base = results["patronage run --no-models --no-clusters --clicks"][0]
    for name, (median, runs, peak) in results.items():
        print(f"{name:<36} median {median:7.2f} s  ({', '.join(f'{r:.2f}' for r in runs)})  "
              f"peak {peak:5.2f} GiB  time ratio to patronage {median / base:5.2f}")


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    if verb == "prepare":
        prepare(args[0], args[1], args[2])
    elif verb == "duckdb":
        peer(*args)
    elif verb == "race":
        race(args[0], args[1], args[2], int(args[3]))
    else:
        sys.exit(__doc__)
