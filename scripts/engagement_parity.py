"""Engagement columns of patronage vs DuckDB SQL on the same clickstream, customer by customer.

The SQL is in engagement_sql.py. `visits_since_last_order` takes the last order day from
patronage's own `last_order_date` (order validation is tested elsewhere); every other column is
computed here from the raw events only.
"""
import math
import sys

import duckdb

from engagement_sql import click_events, engagement_sql

clicks, features, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET threads TO 2")
sql = engagement_sql(click_events(clicks), f"SELECT * FROM read_parquet('{features}')", as_of)
sql += "ORDER BY s.customer_id"
ref = con.execute(sql).fetchall()
cols = [d[0] for d in con.description]
ours = {r[0]: r for r in con.execute(
    f"SELECT customer_id, {', '.join(cols[1:])} FROM read_parquet('{features}')").fetchall()}
failures = 0
for row in ref:
    mine = ours.get(row[0])
    if mine is None:
        print(f"FAIL {row[0]}: missing from patronage's customer_features")
        failures += 1
        continue
    for name, want, got in zip(cols[1:], row[1:], mine[1:]):
        same = (want is None and got is None) or (
            want is not None and got is not None and math.isclose(float(want), float(got), rel_tol=1e-12, abs_tol=1e-12))
        if not same:
            failures += 1
            if failures <= 10:
                print(f"FAIL {row[0]} {name}: duckdb {want} vs patronage {got}")
with_clicks = sum(1 for r in ours.values() if r[1] is not None)
if with_clicks != len(ref):
    print(f"FAIL {with_clicks} customers with sessions in patronage, {len(ref)} in DuckDB")
    failures += 1
print(f"{len(ref)} customers, {len(cols) - 1} engagement columns compared with DuckDB {duckdb.__version__}")
if failures:
    print(f"{failures} mismatches")
    sys.exit(1)
print("all engagement parity checks passed")
