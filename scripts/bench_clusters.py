"""Clustering race (see bench-clusters.sh).

patronage: `run --no-models` with and without `--no-clusters` (whole processes; the difference
is the clustering), and the clusters stage's own time from the manifest. scikit-learn: the same
protocol on the same matrix, timed in-process after loading, and a plain KMeans(n_init=10).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn.cluster import KMeans

from peers import sklearn_protocol, standardize

binary, orders, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
AS_OF = "2024-12-31"
FEATURES = ["recency_days", "frequency", "monetary", "aov", "tenure_days"]


def run(extra, out):
    start = time.perf_counter()
    subprocess.run([binary, "run", "-q", "--no-models", "--orders", orders, "--out", out, "--as-of", AS_OF, *extra],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def matrix(features_path, segments_path):
    """The clustered customers' features through patronage's transform, and their labels."""
    f = pq.read_table(features_path, columns=["customer_id", *FEATURES]).to_pydict()
    s = pq.read_table(segments_path, columns=["customer_id", "cluster_id"]).to_pydict()
    keep = [i for i, c in enumerate(s["cluster_id"]) if c is not None]
    cols = [[f[name][i] if f[name][i] is not None else np.nan for i in keep] for name in FEATURES]
    labels = np.array([s["cluster_id"][i] for i in keep])
    return standardize(cols), labels


def inertia_of(x, labels):
    total = 0.0
    for c in np.unique(labels):
        part = x[labels == c]
        total += ((part - part.mean(axis=0)) ** 2).sum()
    return total


with tempfile.TemporaryDirectory() as tmp:
    with_c, without_c, stage = [], [], []
    for r in range(repeats):
        out = os.path.join(tmp, f"o{r}")
        with_c.append(run([], out))
        stage.append(json.load(open(os.path.join(out, "manifests", f"{AS_OF}.json")))["timings_ms"]["clusters"] / 1e3)
        without_c.append(run(["--no-clusters"], os.path.join(tmp, f"n{r}")))
    out = os.path.join(tmp, "o0")
    m = json.load(open(os.path.join(out, "manifests", f"{AS_OF}.json")))["clusters"]
    x, labels = matrix(os.path.join(out, f"customer_features/run_date={AS_OF}/part-0.parquet"),
                       os.path.join(out, f"segments/run_date={AS_OF}/part-0.parquet"))
k = m["k"]
ours = inertia_of(x, labels)
proto, plain = [], []
for _ in range(repeats):
    t = time.perf_counter(); sk_k, sk_model = sklearn_protocol(x); proto.append(time.perf_counter() - t)
    sk_inertia = sk_model.inertia_
    t = time.perf_counter(); plain_inertia = KMeans(k, n_init=10, random_state=42).fit(x).inertia_; plain.append(time.perf_counter() - t)
med = statistics.median
print(f"data: {len(x):,} customers clustered, {x.shape[1]} features ({', '.join(FEATURES)}); {os.cpu_count()} cores; "
      f"scikit-learn threads: all")
print(f"patronage run --no-models                 median {med(with_c):6.2f} s ({', '.join(f'{v:.2f}' for v in with_c)})")
print(f"patronage run --no-models --no-clusters   median {med(without_c):6.2f} s  -> clustering adds {med(with_c) - med(without_c):.2f} s "
      f"(clusters stage {med(stage):.2f} s); k = {k}, inertia {ours:,.0f}")
print(f"scikit-learn, same protocol               median {med(proto):6.2f} s; k = {sk_k}, inertia {sk_inertia:,.0f}")
print(f"scikit-learn KMeans(k={k}, n_init=10) all rows median {med(plain):6.2f} s; inertia {plain_inertia:,.0f}  "
      f"(patronage / scikit-learn inertia {ours / plain_inertia:.4f})")
