"""Times BG/NBD + Gamma-Gamma fits: patronage's fit_summary example vs lifetimes (grouped, weighted).

Both sides start from the same summary CSV (x, t_x, T, m) and include grouping the triples.
Prints medians, the ratio, and each side's log-likelihood evaluated by lifetimes' own formula.
"""
import json
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter

warnings.simplefilter("ignore")
example, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
summary = pd.read_csv(path)
print(f"{len(summary):,} customers with a purchase, {(summary['x'] > 0).sum():,} repeat customers")

ours = json.loads(subprocess.run([example, path, str(repeats)], check=True, capture_output=True, text=True).stdout)

lt_runs = []
for _ in range(repeats):
    start = time.perf_counter()
    g = summary.groupby(["x", "t_x", "T"]).size().reset_index(name="w")
    bgf = BetaGeoFitter().fit(g["x"], g["t_x"], g["T"], weights=g["w"])
    rep = summary[(summary["x"] > 0) & (summary["m"] > 0)]
    ggf = GammaGammaFitter().fit(rep["x"], rep["m"])
    lt_runs.append(time.perf_counter() - start)


def ll(params):
    logp = np.log([params["r"], params["alpha"], params["a"], params["b"]])
    return -BetaGeoFitter._negative_log_likelihood(logp, g["x"].to_numpy(), g["t_x"].to_numpy().astype(float), g["T"].to_numpy().astype(float), g["w"].to_numpy(), 0.0) * g["w"].sum()


ours_params = dict(ours["bgnbd"]["params"])
lt_params = {k: float(v) for k, v in bgf.params_.items()}
lt_median = statistics.median(lt_runs)
print(f"distinct triples: {ours['unique_triples']:,}")
print(f"patronage  median {ours['median_seconds']:.3f} s  runs {[round(s, 3) for s in ours['all_seconds']]}  BG/NBD LL {ll(ours_params):.4f}")
print("patronage  median split: " + ", ".join(f"{k} {v:.3f} s" for k, v in ours["median_split_seconds"].items()))
print(f"lifetimes  median {lt_median:.3f} s  runs {[round(s, 3) for s in lt_runs]}  BG/NBD LL {ll(lt_params):.4f}")
print(f"speed-up: {lt_median / ours['median_seconds']:.1f}x; LL difference (patronage - lifetimes): {ll(ours_params) - ll(lt_params):.6f}")
print("params patronage:", {k: round(v, 6) for k, v in ours_params.items()}, "| lifetimes:", {k: round(v, 6) for k, v in lt_params.items()})
