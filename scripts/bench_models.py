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

# The other customer-base models: patronage's fit of each on the same grouped triples (medians
# from fit_summary), against BG/NBD's; and lifetimes' ModifiedBetaGeoFitter and ParetoNBDFitter
# (grouped, weighted: their best setting) where they finish in reasonable time (up to 200k
# customers; Pareto/NBD's Nelder-Mead on ~300k distinct triples takes minutes).
from lifetimes import ModifiedBetaGeoFitter, ParetoNBDFitter

models = ours.get("customer_models", {})
base = models.get("bgnbd", {}).get("median_seconds")
for key, label, fitter, keys in [("mbgnbd", "MBG/NBD", ModifiedBetaGeoFitter, ("r", "alpha", "a", "b")),
                                 ("pareto_nbd", "Pareto/NBD", ParetoNBDFitter, ("r", "alpha", "s", "beta"))]:
    if key not in models:
        continue
    mine = models[key]["median_seconds"]
    line = f"{label:10s} patronage median {mine:.3f} s ({mine / base:.2f}x BG/NBD's {base:.3f} s)"
    if len(summary) <= 200_000:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            fitted = fitter().fit(g["x"], g["t_x"], g["T"], weights=g["w"])
            runs.append(time.perf_counter() - start)
        theirs = statistics.median(runs)
        line += f" | lifetimes median {theirs:.3f} s ({theirs / mine:.1f}x slower)"
        line += " | params patronage " + ", ".join(f"{k}={dict(models[key]['fit']['params'])[k]:.5g}" for k in keys)
        line += " | lifetimes " + ", ".join(f"{k}={float(fitted.params_[k]):.5g}" for k in keys)
    print(line)
