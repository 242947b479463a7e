"""Side-by-side timing of the per-customer RFM/BTYD aggregation on one Parquet file.

patronage: the full `run --no-models --no-clusters --no-loyalty` (validation, line grouping,
features, segments, control groups, Parquet output) — more work than the peers, which only
aggregate. DuckDB: all threads. Python polars:
lazy scan with the streaming engine. Prints medians over REPEATS and the ratios to patronage; also patronage's ingest + features + segments
stages alone (the issue's "RFM stage, no write"), from the stage timings in each run's manifest.
"""
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb
import polars as pl

binary, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
AS_OF = "2024-12-31"


def timed(fn):
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), runs


# The "RFM stage alone" (ingest + features + scores, no write), per run: the sum of those
# stages' timings in the run's own manifest (the process also writes the tables).
stages_only = []


def patronage():
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([binary, "run", "-q", "--no-models", "--no-clusters", "--no-loyalty", "--orders", path, "--out", out, "--as-of", AS_OF],
                       check=True, stdout=subprocess.DEVNULL)
        manifest = glob.glob(os.path.join(out, "manifests", "*.json"))[0]
        with open(manifest) as f:
            timings = json.load(f)["timings_ms"]
        stages_only.append(sum(timings[s] for s in ("ingest", "features", "segments")) / 1e3)


con = duckdb.connect()
con.execute(f"SET threads TO {os.cpu_count()}")
# The same SQL for text and typed columns: casts of typed columns are no-ops, and a missing id
# is NULL in a typed file, '' in a text one.
TYPED = pl.read_parquet_schema(path)["customer_id"] != pl.String
ID_OK = "customer_id IS NOT NULL" if TYPED else "customer_id <> ''"
DUCK = f"""
WITH o AS (
  SELECT customer_id, order_id, CAST(TRY_CAST(order_ts AS TIMESTAMP) AS DATE) AS day,
         TRY_CAST(amount AS DOUBLE) AS amount
  FROM read_parquet('{path}')
  WHERE coalesce(status, 'completed') = 'completed'
), v AS (
  SELECT * FROM o WHERE {ID_OK} AND day IS NOT NULL AND amount >= 0 AND day <= DATE '{AS_OF}'
)
SELECT customer_id, count(DISTINCT order_id) AS frequency, sum(amount) AS monetary,
       count(DISTINCT day) - 1 AS btyd_x, max(day) - min(day) AS btyd_t_x,
       DATE '{AS_OF}' - min(day) AS btyd_T, DATE '{AS_OF}' - max(day) AS recency_days
FROM v GROUP BY customer_id
"""


def duck():
    return con.sql(DUCK).to_arrow_table()


def polars_lazy():
    as_of = pl.lit(AS_OF).str.to_date()
    ts = pl.col("order_ts") if TYPED else pl.col("order_ts").str.to_datetime(strict=False)
    id_ok = pl.col("customer_id").is_not_null() if TYPED else pl.col("customer_id") != ""
    return (
        pl.scan_parquet(path)
        .with_columns(
            day=ts.dt.date(),
            amount=pl.col("amount").cast(pl.Float64, strict=False),
        )
        .filter((pl.col("status").fill_null("completed") == "completed") & id_ok
                & pl.col("day").is_not_null() & (pl.col("amount") >= 0) & (pl.col("day") <= as_of))
        .group_by("customer_id")
        .agg(
            frequency=pl.col("order_id").n_unique(),
            monetary=pl.col("amount").sum(),
            btyd_x=pl.col("day").n_unique() - 1,
            first=pl.col("day").min(),
            last=pl.col("day").max(),
        )
        .collect(engine="streaming")
    )


rows = pl.scan_parquet(path).select(pl.len()).collect().item()
customers = duck().num_rows
kind = "typed columns, integer ids" if TYPED else "string columns"
print(f"data: {rows:,} order rows, {customers:,} customers, {os.path.getsize(path) / 1e6:.0f} MB Parquet ({kind}); {os.cpu_count()} cores")
results = {}
for name, fn in [("patronage run --no-models --no-clusters --no-loyalty", patronage), ("duckdb (all threads)", duck), ("python polars (lazy, streaming)", polars_lazy)]:
    results[name] = timed(fn)
results["patronage ingest + features + segments (no write)"] = (statistics.median(stages_only), stages_only)
base = results["patronage run --no-models --no-clusters --no-loyalty"][0]
for name, (median, runs) in results.items():
    print(f"{name:<52} median {median:7.2f} s  ({', '.join(f'{r:.2f}' for r in runs)})  ratio to patronage {median / base:5.2f}")
