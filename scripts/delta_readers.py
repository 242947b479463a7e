"""Checks `--format delta` tables with three independent readers (see delta-readers.sh).

For every table and run date: the rows read by delta-rs, DuckDB's delta_scan and polars equal
the Parquet layout's rows; every column's description is in the Delta schema (delta-rs, and
DuckDB reading the log), equals the one the Parquet layout's files carry, and is in the Delta
table's own files (pyarrow); polars reads each file's table description; the rerun is in
the table's history (time travel to version 0 gives the first run's rows); a partitioned run's
table equals the single run's.
"""
import datetime
import glob
import json
import os
import sys

import deltalake
import duckdb
import duckdb_extension_delta
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from polars.testing import assert_frame_equal

work = sys.argv[1]
hive, lake, split = (os.path.join(work, d) for d in ("parquet", "delta", "delta-partitioned"))
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__),
                             "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect()
con.execute(f"LOAD '{ext}'")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"  MISMATCH: {what}")


def canonical(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in `schema`'s column order and types, rows sorted by every column."""
    table = table.select(schema.names).cast(schema)
    return table.sort_by([(c, "ascending") for c in schema.names])


tables = sorted(t for t in os.listdir(hive)
                if glob.glob(os.path.join(hive, t, "run_date=*")))
check(tables == sorted(t for t in os.listdir(lake)
                       if os.path.isdir(os.path.join(lake, t, "_delta_log"))),
      "the same tables in both layouts")
for t in tables:
    path = os.path.join(lake, t)
    dt = deltalake.DeltaTable(path)
    comments = {f.name: (f.metadata or {}).get("comment") for f in dt.schema().fields}
    log_schema = con.execute(
        "select json_extract_string(metaData, '$.schemaString') from read_json_auto(?) "
        "where metaData is not null order by filename desc limit 1",
        [os.path.join(path, "_delta_log", "*.json")],
    ).fetchone()[0]
    duck_comments = {f["name"]: f["metadata"].get("comment") for f in json.loads(log_schema)["fields"]}
    check(comments == duck_comments, f"{t}: DuckDB reads the log's descriptions")
    dates = sorted(d.split("=", 1)[1] for d in os.listdir(os.path.join(hive, t)))
    counts = []
    for d in dates:
        files = sorted(glob.glob(os.path.join(hive, t, f"run_date={d}", "*.parquet")))
        expected = pa.concat_tables(pq.read_table(f) for f in files)
        # Plain strings: polars writes string views, which pyarrow cannot sort.
        schema = pa.schema([f.with_type(pa.string()) if f.type in (pa.string_view(), pa.binary_view())
                            else f for f in pq.read_schema(files[0])])
        for field in schema:
            described = (field.metadata or {}).get(b"description", b"").decode()
            check(described and comments.get(field.name) == described,
                  f"{t}.{field.name}: the Delta schema's description is the file's")
        want = canonical(expected, schema)
        day = datetime.date.fromisoformat(d)
        by_rs = dt.to_pyarrow_table(filters=[("run_date", "=", day)])
        check(canonical(by_rs, schema).equals(want), f"{t} {d}: delta-rs rows")
        by_duck = con.execute(f"select * from delta_scan('{path}') where run_date = ?", [day]).arrow()
        if hasattr(by_duck, "read_all"):
            by_duck = by_duck.read_all()
        check(canonical(by_duck, schema).equals(want), f"{t} {d}: DuckDB rows")
        by_pl = pl.read_delta(path).filter(pl.col("run_date") == day).drop("run_date")
        check(canonical(by_pl.to_arrow(), schema).equals(want), f"{t} {d}: polars rows")
        live = [os.path.join(path, f) for f in dt.file_uris() if f"run_date={d}" in f] or [
            os.path.join(path, f) for f in dt.files() if f.startswith(f"run_date={d}")]
        for f in live:
            in_file = {x.name: (x.metadata or {}).get(b"description", b"").decode() for x in pq.read_schema(f)}
            check(all(comments.get(c) == desc for c, desc in in_file.items()),
                  f"{t} {d}: pyarrow reads every description in the Delta table's files")
        kv = pl.read_parquet_metadata(live[0])
        check(kv.get("patronage.table") == pq.read_metadata(files[0]).metadata[b"patronage.table"].decode(),
              f"{t} {d}: polars reads the table's description")
        counts.append(f"{d}: {expected.num_rows}")
    # The rerun of the first as-of replaced its partition; version 0 still has the first run.
    history = dt.history()
    first = deltalake.DeltaTable(path, version=0).to_pyarrow_table()
    check(len(history) == 3, f"{t}: three commits ({len(history)})")
    check(first.num_rows == pc.sum(pc.equal(
        dt.to_pyarrow_table().column("run_date"), pa.scalar(datetime.date(2024, 12, 30)))).as_py(),
          f"{t}: time travel to version 0")
    if os.path.isdir(os.path.join(split, t)):
        one = pl.read_delta(path).filter(pl.col("run_date") == datetime.date(2024, 12, 30))
        three = pl.read_delta(os.path.join(split, t))
        one, three = (f.sort(one.columns) for f in (one, three))
        try:
            assert_frame_equal(one, three.select(one.columns), check_exact=False, rel_tol=1e-9)
            split_ok = True
        except AssertionError as e:
            print(f"  {e}")
            split_ok = False
        check(split_ok, f"{t}: the partitioned run's table equals the single run's")
    described = sum(c is not None for c in comments.values())
    print(f"{t}: {', '.join(counts)} rows equal in delta-rs, DuckDB and polars; "
          f"{described}/{len(comments)} columns described; {len(history)} commits")
print(f"{len(tables)} Delta tables: {'all equal' if not failures else f'{len(failures)} mismatches'}")
sys.exit(1 if failures else 0)
