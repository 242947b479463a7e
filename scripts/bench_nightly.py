"""The whole nightly job side by side with the stack a data team would assemble from peers.

patronage: `run` with its defaults (validation, order and click features, BG/NBD + Gamma-Gamma,
segments, value tiers, clusters, loyalty stages, Parquet out). Peer stack, one Python process:
DuckDB (all threads) for the order features and the clickstream engagement, `lifetimes` fitting
BG/NBD on grouped triples with weights and Gamma-Gamma on the repeat customers, then scoring
every customer; RFM quintiles, segments and value tiers in DuckDB; scikit-learn k-means with
patronage's own protocol (k chosen on a sample, all rows assigned); pyarrow writes the tables.
The peer stack does less (no row validation, quarantine, loyalty stages or manifest).

Each side runs as its own process, in turn (ours, peers, ours, ...); wall time is measured
around the process and peak memory is the process's maximum resident set (wait4).

Usage: bench_nightly.py BIN WORKDIR SIZES REPEATS CLICKS_BELOW
  SIZES: comma-separated millions of order rows (e.g. 1,10,100); clicks are generated and used
  for sizes below CLICKS_BELOW millions.
  bench_nightly.py peer ORDERS CLICKS|- OUT AS_OF  runs the peer stack once.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

AS_OF = "2024-12-31"
# The shape: about 10 order rows per customer (10M rows, ~0.9M customers), generated with
# a higher purchase rate and a lower dropout than the generator's CDNOW-like defaults.
SHAPE = ["--purchase-rate", "20", "--dropout", "0.03"]
ROWS_PER_CUSTOMER = 11.61  # order rows per customer in those shops


def peer(orders, clicks, out, as_of):
    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    from engagement_sql import click_events, engagement_sql
    from peers import sklearn_protocol, standardize

    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count()}")
    typed = con.execute(f"SELECT typeof(customer_id) FROM read_parquet('{orders}') LIMIT 1").fetchone()[0] != "VARCHAR"
    id_ok = "customer_id IS NOT NULL" if typed else "customer_id <> ''"
    con.execute(f"""
CREATE TABLE f AS
WITH o AS (
  SELECT customer_id, order_id, CAST(TRY_CAST(order_ts AS TIMESTAMP) AS DATE) AS day,
         TRY_CAST(amount AS DOUBLE) AS amount, category
  FROM read_parquet('{orders}')
  WHERE coalesce(status, 'completed') = 'completed'
), v AS (
  SELECT * FROM o WHERE {id_ok} AND day IS NOT NULL AND amount >= 0 AND day <= DATE '{as_of}'
), d AS (
  SELECT customer_id, day, sum(amount) AS spend, count(DISTINCT order_id) AS orders
  FROM v GROUP BY ALL
), c AS (
  SELECT customer_id, count(DISTINCT category) AS categories_bought FROM v GROUP BY ALL
)
SELECT customer_id, sum(orders) AS frequency, sum(spend) AS monetary,
       sum(spend) / sum(orders) AS aov, count(*) - 1 AS x, max(day) - min(day) AS t_x,
       DATE '{as_of}' - min(day) AS T, DATE '{as_of}' - max(day) AS recency_days,
       DATE '{as_of}' - min(day) AS tenure_days, max(day) AS last_order_date,
       CASE WHEN count(*) > 1 THEN (sum(spend) - arg_min(spend, day)) / (count(*) - 1) END AS m,
       any_value(categories_bought) AS categories_bought
FROM d JOIN c USING (customer_id) GROUP BY customer_id
""")
    if clicks != "-":
        last = "SELECT CAST(customer_id AS VARCHAR) AS customer_id, last_order_date FROM f"
        con.execute(f"CREATE TABLE e AS {engagement_sql(click_events(clicks), last, as_of)}")
        features = con.sql("SELECT f.*, e.* EXCLUDE (customer_id) FROM f LEFT JOIN e ON CAST(f.customer_id AS VARCHAR) = e.customer_id").to_arrow_table()
    else:
        features = con.sql("SELECT * FROM f").to_arrow_table()

    # BG/NBD on distinct triples with weights; Gamma-Gamma on repeat customers (days).
    g = con.sql("SELECT x, t_x, T, count(*) AS w FROM f GROUP BY ALL").df()
    bgf = BetaGeoFitter().fit(g["x"], g["t_x"], g["T"], weights=g["w"])
    rep = con.sql("SELECT x, m FROM f WHERE x > 0 AND m > 0").df()
    ggf = GammaGammaFitter().fit(rep["x"], rep["m"])
    cols = con.sql("SELECT customer_id, x, t_x, T, m FROM f").df()
    x, t_x, big_t = cols["x"].to_numpy(float), cols["t_x"].to_numpy(float), cols["T"].to_numpy(float)
    p_alive = bgf.conditional_probability_alive(x, t_x, big_t)
    expected_90 = bgf.conditional_expected_number_of_purchases_up_to_time(90, x, t_x, big_t)
    expected_365 = bgf.conditional_expected_number_of_purchases_up_to_time(365, x, t_x, big_t)
    # Gamma-Gamma's expected spend; with no repeat purchase (x = 0) it is the population mean.
    spend = ggf.conditional_expected_average_profit(cols["x"], cols["m"].fillna(0)).to_numpy()
    scores = pa.table({"customer_id": pa.array(cols["customer_id"]), "p_alive": p_alive,
                       "expected_purchases_90d": expected_90, "clv": expected_365 * spend})
    con.register("scores", scores)

    # RFM quintiles, a named grid and 80/20 value tiers.
    segments = con.sql("""
WITH s AS (
  SELECT customer_id, ntile(5) OVER (ORDER BY recency_days DESC) AS r,
         ntile(5) OVER (ORDER BY frequency) AS f, ntile(5) OVER (ORDER BY monetary) AS m, monetary
  FROM f
), t AS (
  SELECT *, sum(monetary) OVER (ORDER BY monetary DESC ROWS UNBOUNDED PRECEDING)
            / sum(monetary) OVER () AS share FROM s
)
SELECT customer_id, r, f, m,
  CASE WHEN r >= 4 AND f >= 4 AND m >= 4 THEN 'champions'
       WHEN r >= 3 AND f >= 3 THEN 'loyal'
       WHEN r >= 4 AND f <= 2 THEN 'new_customers'
       WHEN r <= 2 AND f >= 3 THEN 'at_risk'
       WHEN r <= 2 AND f <= 2 THEN 'hibernating'
       ELSE 'needs_attention' END AS rfm_segment,
  CASE WHEN share <= 0.8 THEN 'top' WHEN share <= 0.95 THEN 'middle' ELSE 'tail' END AS value_tier
FROM t""").to_arrow_table()

    # Clusters: patronage's five features, transform and protocol.
    names = ["recency_days", "frequency", "monetary", "aov", "tenure_days"]
    matrix = standardize([features.column(n).to_numpy(zero_copy_only=False).astype(float) for n in names])
    k, model = sklearn_protocol(matrix)
    segments = segments.append_column("cluster_id", pa.array(model.labels_.astype("int32")))

    os.makedirs(out, exist_ok=True)
    for name, table in [("customer_features", features), ("churn_scores", scores), ("segments", segments)]:
        pq.write_table(table, os.path.join(out, f"{name}.parquet"), compression="zstd")


def measured(cmd):
    """Wall seconds and peak resident MiB of one process."""
    # stderr to a file, not a pipe: a process that says much would block on a full pipe.
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        log.seek(0)
        err = log.read().decode(errors="replace")
    if status != 0:
        return None, None, err.strip().splitlines()[-1:] or ["failed"]
    return wall, usage.ru_maxrss / 1024, None


def main():
    binary, work, sizes, repeats, clicks_below = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    for size in [float(s) for s in sizes.split(",")]:
        customers = round(size * 1e6 / ROWS_PER_CUSTOMER)
        for ids, fmt in [("int", "parquet-typed"), ("string", "parquet")]:
            shop = os.path.join(work, f"shop-{size:g}m-{ids}")
            orders = os.path.join(shop, "orders.parquet")
            with_clicks = size < clicks_below
            if not os.path.exists(orders) or (with_clicks and not os.path.exists(os.path.join(shop, "clicks.parquet"))):
                print(f"generating {customers:,} customers ({fmt}) in {shop}", file=sys.stderr)
                subprocess.run([binary, "generate", "--customers", str(customers), "--format", fmt, "--out", shop]
                               + SHAPE + ([] if with_clicks else ["--no-clicks"]),
                               check=True, stdout=subprocess.DEVNULL)
            clicks = os.path.join(shop, "clicks.parquet") if with_clicks else "-"
            ours_cmd = [binary, "run", "-q", "--orders", orders, "--out", os.path.join(work, "out-ours"), "--as-of", AS_OF]
            if with_clicks:
                ours_cmd += ["--clicks", clicks]
            peer_cmd = [sys.executable, os.path.join(here, "bench_nightly.py"), "peer", orders, clicks,
                        os.path.join(work, "out-peers"), AS_OF]
            runs = {"ours": [], "peers": []}
            failed = {}
            for r in range(repeats):
                for side, cmd in [("ours", ours_cmd), ("peers", peer_cmd)]:
                    if side in failed:
                        continue
                    wall, peak, err = measured(cmd)
                    if err:
                        failed[side] = err[0]
                        print(f"{side} failed at {size:g}M/{ids}: {err[0]}", file=sys.stderr)
                    else:
                        runs[side].append((wall, peak))
                        print(f"{size:g}M {ids} {side} run {r + 1}: {wall:.2f} s, {peak:,.0f} MiB", file=sys.stderr)
            events = ""
            if with_clicks:
                import pyarrow.parquet as pq
                events = f", {pq.ParquetFile(clicks).metadata.num_rows:,} click events"
            rows.append((size, ids, customers, events, runs, failed))

    med = statistics.median
    print(f"# whole nightly job vs the peer stack; medians of {repeats}; {os.cpu_count()} cores")
    print("| order rows | ids | customers | patronage wall | peak | peer stack wall | peak | peers / patronage wall | peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, ids, customers, events, runs, failed in rows:
        cell = {}
        for side in ("ours", "peers"):
            if runs[side]:
                cell[side] = (med(w for w, _ in runs[side]), med(p for _, p in runs[side]))
        def show(side):
            if side not in cell:
                return f"failed ({failed.get(side, 'not run')})", "—"
            w, p = cell[side]
            return f"{w:.2f} s", f"{p / 1024:.2f} GiB"
        ow, op = show("ours")
        pw, pp = show("peers")
        ratio = (f"{cell['peers'][0] / cell['ours'][0]:.2f}×", f"{cell['peers'][1] / cell['ours'][1]:.2f}×") \
            if len(cell) == 2 else ("—", "—")
        print(f"| {size:g}M{events} | {ids} | {customers:,} | {ow} | {op} | {pw} | {pp} | {ratio[0]} | {ratio[1]} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        peer(*sys.argv[2:6])
    else:
        main()
