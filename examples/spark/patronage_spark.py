"""Patronage on Apache Spark: the scale-out protocol (docs/scale-out.md) with Spark as the
router and the scheduler, and the patronage binary doing the work.

1. Spark reads the exports and routes every row to its customer's partition,
   stable_hash(customer_id) mod n (the hash patronage uses: FNV-1a 64 + the SplitMix64 mixer),
   writing each partition's rows as Parquet under WORK/input/<kind>/_p=<i>/. An order whose id
   names several customers goes whole to one partition (by its order id), so the conflict is
   seen and its lines rejected there; a click event with a visitor id only goes with the customer
   its visitor is linked to (the smallest customer id the visitor's events name).
2. One Spark task per partition runs `patronage partial --prepartitioned` on its rows.
3. The driver runs `patronage fit` once on the partitions' statistics.
4. One Spark task per partition runs `patronage score --prepartitioned` with the fit.
5. The driver runs `patronage publish`: the same Hive-partitioned tables as `patronage run`
   (OUT/<table>/run_date=<as-of>/part-<i>.parquet), published atomically.

The binary is shipped to the executors with SparkContext.addFile: one static file, the very
artifact the nightly CLI runs, and nothing to build on the cluster (a Python wheel of the library
would need a Python API over the engine and a build per platform for the same result). WORK
must be a path every executor and the driver see (a shared or distributed file system; on
local[N] any directory).

Usage:
  python patronage_spark.py --binary target/release/patronage --orders shop/orders.parquet \
      [--customers shop/customers.csv] [--clicks shop/clicks.parquet] --out OUT --work WORK \
      --as-of 2024-12-31 --partitions 8 [--master local[2]] [-- more patronage run flags]
"""

import argparse
import os
import shutil
import stat
import subprocess
import sys

M64 = (1 << 64) - 1


def stable_hash(text: str) -> int:
    """FNV-1a 64 of the UTF-8 bytes, finalized by SplitMix64 (patronage_segments::stable_hash)."""
    h = 0xCBF29CE484222325
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & M64
    z = (h + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def read(spark, path):
    """A CSV (every column as text, as patronage reads it) or Parquet export."""
    if path.endswith(".csv"):
        return spark.read.csv(path, header=True, inferSchema=False)
    return spark.read.parquet(path)


def routed(spark, args, n):
    """Each input with `_p`, the partition of the customer its row belongs to."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType

    part = F.udf(lambda key: None if key is None else stable_hash(key) % n, IntegerType())

    def customer(col):
        # The id as patronage keys it: the text, trimmed; empty is no customer.
        c = F.trim(F.col(col).cast("string"))
        return F.when(c != "", c)

    inputs = {}
    orders = read(spark, args.orders).withColumn("_c", customer("customer_id"))
    # Orders whose lines name several customers: routed whole by their order id.
    conflicting = (
        orders.where(F.col("_c").isNotNull())
        .groupBy(F.col("order_id").cast("string").alias("_o"))
        .agg(F.countDistinct("_c").alias("_k"))
        .where(F.col("_k") > 1)
        .select("_o", F.lit(True).alias("_conflict"))
    )
    orders = orders.join(conflicting, F.col("order_id").cast("string") == F.col("_o"), "left")
    key = F.when(
        F.col("_conflict").isNull() & F.col("_c").isNotNull(), F.col("_c")
    ).otherwise(F.concat(F.lit("order:"), F.col("order_id").cast("string")))
    inputs["orders"] = orders.withColumn("_p", part(key)).drop("_c", "_o", "_conflict")
    if args.customers:
        profiles = read(spark, args.customers)
        id_column = "customer_id" if "customer_id" in profiles.columns else profiles.columns[0]
        inputs["customers"] = profiles.withColumn("_p", part(customer(id_column)))
    if args.clicks:
        clicks = read(spark, args.clicks).withColumn("_c", customer("customer_id"))
        visitor = F.trim(F.col("visitor_id").cast("string"))
        links = (
            clicks.where(F.col("_c").isNotNull() & (visitor != ""))
            .groupBy(visitor.alias("_v"))
            .agg(F.min("_c").alias("_link"))
        )
        clicks = clicks.join(links, visitor == F.col("_v"), "left")
        key = F.coalesce(
            F.col("_c"), F.col("_link"), F.concat(F.lit("visitor:"), visitor)
        )
        inputs["clicks"] = clicks.withColumn("_p", part(key)).drop("_c", "_v", "_link")
    return inputs


def phase(binary, phase_name, i, n, paths, common):
    """Runs one phase of partition i in a task; returns (i, exit code, stderr)."""
    args = [binary, phase_name, "--partition", f"{i}/{n}", "--prepartitioned"]
    for kind, path in paths.items():
        args += [f"--{kind}", os.path.join(path, f"_p={i}")]
    done = subprocess.run(args + common, capture_output=True, text=True)
    return i, done.returncode, done.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--orders", required=True)
    ap.add_argument("--customers")
    ap.add_argument("--clicks")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--as-of", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--master", default=None)
    ap.add_argument("rest", nargs="*", help="more `patronage run` flags (after --)")
    args = ap.parse_args()
    n = args.partitions

    from pyspark import SparkFiles
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("patronage")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.config("spark.sql.shuffle.partitions", str(n)).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    sc = spark.sparkContext
    work = os.path.abspath(args.work)
    shutil.rmtree(os.path.join(work, "input"), ignore_errors=True)

    # 1. Route.
    paths = {}
    for kind, df in routed(spark, args, n).items():
        path = os.path.join(work, "input", kind)
        df.repartition(n, "_p").write.partitionBy("_p").parquet(path)
        paths[kind] = path
    missing = [i for i in range(n) if not os.path.isdir(os.path.join(paths["orders"], f"_p={i}"))]
    if missing:
        sys.exit(f"partitions {missing} hold no order: use fewer partitions")

    # 2-5. The phases: partitions in tasks, fit and publish on the driver.
    sc.addFile(os.path.abspath(args.binary))
    name = os.path.basename(args.binary)
    common = ["--work", work, "--out", os.path.abspath(args.out), "--as-of", args.as_of, "-q"]
    common += args.rest

    def in_task(phase_name):
        def run(i):
            binary = SparkFiles.get(name)
            os.chmod(binary, os.stat(binary).st_mode | stat.S_IXUSR)
            return phase(binary, phase_name, i, n, paths, common)

        return run

    # The driver's phases read no input, but take the run's flags as the tasks do.
    inputs = [f"--{k}={v}" for k, v in [("orders", args.orders), ("customers", args.customers),
                                        ("clicks", args.clicks)] if v]

    def driver(phase_name):
        done = subprocess.run(
            [os.path.abspath(args.binary), phase_name, "--partitions", str(n)] + inputs + common,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"patronage {phase_name} failed:\n{done.stderr}")
        return done.stdout

    for phase_name in ["partial", "score"]:
        results = sc.parallelize(range(n), n).map(in_task(phase_name)).collect()
        failed = [(i, err) for i, code, err in results if code != 0]
        if failed:
            sys.exit(f"patronage {phase_name} failed in partitions:\n"
                     + "\n".join(f"{i}: {err}" for i, err in failed))
        if phase_name == "partial":
            driver("fit")
    print(driver("publish"), end="")
    spark.stop()


if __name__ == "__main__":
    main()
