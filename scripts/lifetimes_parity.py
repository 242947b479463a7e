"""Compare patronage's BG/NBD, Gamma-Gamma and CLV with lifetimes 0.11.3 on the same summary.

Usage: lifetimes_parity.py OUT AS_OF [MBG_OUT PARETO_OUT]   (finished patronage runs; the last
two with models.customer_model = "mbgnbd" and "pareto_nbd")

Checks, each printed with its numbers; exit 1 if any fails:
1. fits: patronage's log-likelihood is no worse than lifetimes' on the same weighted triples
   (to 1e-6 per customer), and parameters agree to 1e-3 relative;
2. formulas: at patronage's parameters, lifetimes' p_alive and conditional expected purchases
   (90 days), Gamma-Gamma expected spend and 12-month CLV equal patronage's columns to 1e-6
   (relative for CLV and spend);
3. standard errors: lifetimes' formula (exact autograd Hessian of the mean NLL in log-parameters,
   delta method), evaluated at patronage's parameters, equals the manifest's to 1e-5 relative;
4. end to end: with lifetimes' own fitted parameters the per-customer p_alive and expected
   purchases differ from patronage's by less than 1e-3 (fit tolerance, reported);
5. MBG/NBD and Pareto/NBD: log-likelihood no worse than lifetimes' own fit on the same weighted
   triples; at patronage's parameters, lifetimes' p_alive and expected purchases equal
   patronage's to 1e-6; for Pareto/NBD also p_purchase = 1 − lifetimes' P(0 purchases in the
   horizon) (its conditional pmf, Fader & Hardie's note 028) to 1e-6.
"""
import json
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from autograd import hessian
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

warnings.simplefilter("ignore")
out, as_of = sys.argv[1], sys.argv[2]
others = dict(zip(("mbgnbd", "pareto_nbd"), sys.argv[3:5]))


def table(name, where=out):
    return pq.read_table(f"{where}/{name}/run_date={as_of}/part-0.parquet").to_pandas()


feats = table("customer_features").set_index("customer_id")
scores = table("churn_scores").set_index("customer_id")
manifest = json.load(open(f"{out}/manifests/{as_of}.json"))
models = manifest["models"]
horizon = models["horizon_days"]
ours_bg = dict(models["bgnbd"]["params"])
ours_gg = dict(models["gamma_gamma"]["params"])
failures = []


def check(name, ok, detail):
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if not ok:
        failures.append(name)


buyers = feats[feats["frequency"] > 0]
x, tx, T = (buyers[c].astype(float).to_numpy() for c in ("btyd_x", "btyd_t_x", "btyd_T"))
grouped = buyers.groupby(["btyd_x", "btyd_t_x", "btyd_T"]).size().reset_index(name="w")
print(f"{len(buyers)} customers, {len(grouped)} distinct (x, t_x, T) triples, as-of {as_of}, unit = day")

# 1. Fits on the same weighted triples.
bgf = BetaGeoFitter().fit(grouped["btyd_x"], grouped["btyd_t_x"], grouped["btyd_T"], weights=grouped["w"])
lt_bg = {k: float(v) for k, v in bgf.params_.items()}


def ll(params):
    logp = np.log([params["r"], params["alpha"], params["a"], params["b"]])
    return -BetaGeoFitter._negative_log_likelihood(
        logp, grouped["btyd_x"].to_numpy(), grouped["btyd_t_x"].to_numpy().astype(float),
        grouped["btyd_T"].to_numpy().astype(float), grouped["w"].to_numpy(), 0.0) * grouped["w"].sum()


ll_ours, ll_lt = ll(ours_bg), ll(lt_bg)
n = grouped["w"].sum()
check("BG/NBD log-likelihood no worse than lifetimes", ll_ours >= ll_lt - 1e-6 * n,
      f"patronage {ll_ours:.6f} vs lifetimes {ll_lt:.6f} (patronage manifest says {models['bgnbd']['log_likelihood']:.6f})")
rel = max(abs(ours_bg[k] / lt_bg[k] - 1) for k in lt_bg)
check("BG/NBD parameters", rel < 1e-3,
      "patronage " + ", ".join(f"{k}={ours_bg[k]:.6g}" for k in lt_bg) + " | lifetimes " + ", ".join(f"{k}={lt_bg[k]:.6g}" for k in lt_bg) + f" | max rel diff {rel:.2e}")

rep = buyers[(buyers["btyd_x"] > 0) & (buyers["btyd_m"] > 0)]
ggf = GammaGammaFitter().fit(rep["btyd_x"], rep["btyd_m"])
lt_gg = {"p": float(ggf.params_["p"]), "q": float(ggf.params_["q"]), "gamma": float(ggf.params_["v"])}
rel = max(abs(ours_gg[k] / lt_gg[k] - 1) for k in lt_gg)
check("Gamma-Gamma parameters", rel < 1e-3,
      "patronage " + ", ".join(f"{k}={ours_gg[k]:.6g}" for k in lt_gg) + " | lifetimes " + ", ".join(f"{k}={lt_gg[k]:.6g}" for k in lt_gg) + f" | max rel diff {rel:.2e}")

# 2. Formulas at patronage's parameters.
bgf.params_ = pd.Series([ours_bg[k] for k in ("r", "alpha", "a", "b")], index=["r", "alpha", "a", "b"])
ggf.params_ = pd.Series([ours_gg["p"], ours_gg["q"], ours_gg["gamma"]], index=["p", "q", "v"])
s = scores.loc[buyers.index]
p_alive = bgf.conditional_probability_alive(x, tx, T)
expected = bgf.conditional_expected_number_of_purchases_up_to_time(horizon, x, tx, T)
d = np.max(np.abs(p_alive - s["p_alive"].to_numpy()))
check("p_alive at equal parameters", d < 1e-6, f"max |diff| {d:.2e} over {len(s)} customers")
d = np.max(np.abs(expected - s["expected_purchases"].to_numpy()))
check(f"expected purchases ({horizon} days) at equal parameters", d < 1e-6, f"max |diff| {d:.2e}")
m = buyers["btyd_m"].fillna(0.0).to_numpy()
spend = ggf.conditional_expected_average_profit(pd.Series(x), pd.Series(m)).to_numpy()
d = np.max(np.abs(spend / s["expected_spend"].to_numpy() - 1))
check("Gamma-Gamma expected spend at equal parameters", d < 1e-6, f"max rel diff {d:.2e}")
clv_cfg = models["clv"]
clv = ggf.customer_lifetime_value(bgf, pd.Series(x), pd.Series(tx), pd.Series(T), pd.Series(m),
                                  time=clv_cfg["months"], discount_rate=clv_cfg["monthly_discount_rate"], freq="D").to_numpy()
ours_clv = s["clv"].to_numpy()
d = np.max(np.abs(clv - ours_clv) / np.maximum(np.abs(clv), 1e-9))
check("CLV at equal parameters", d < 1e-6, f"max rel diff {d:.2e}; total CLV {ours_clv.sum():.2f}")

# 3. Standard errors: lifetimes' variance formula at patronage's parameters.
def lifetimes_se(nll, params, args, n):
    log_p = np.log(np.asarray(params, dtype=float))
    h = hessian(nll)(log_p, *args)
    return np.sqrt(np.diag(np.asarray(params) ** 2 * np.linalg.inv(h) / n))


bg_args = (grouped["btyd_x"].to_numpy().astype(float), grouped["btyd_t_x"].to_numpy().astype(float),
           grouped["btyd_T"].to_numpy().astype(float), grouped["w"].to_numpy().astype(float), 0.0)
se_lt = lifetimes_se(BetaGeoFitter._negative_log_likelihood, [ours_bg[k] for k in ("r", "alpha", "a", "b")], bg_args, n)
se_ours = np.array([models["bgnbd"]["std_errors"][k] for k in ("r", "alpha", "a", "b")], dtype=float)
d = np.max(np.abs(se_ours / se_lt - 1))
check("BG/NBD standard errors", d < 1e-5, f"patronage {np.round(se_ours, 6).tolist()} | lifetimes {np.round(se_lt, 6).tolist()} | max rel diff {d:.2e}")
gg_args = (rep["btyd_x"].to_numpy().astype(float), rep["btyd_m"].to_numpy().astype(float), np.ones(len(rep)), 0.0)
se_lt = lifetimes_se(GammaGammaFitter._negative_log_likelihood, [ours_gg[k] for k in ("p", "q", "gamma")], gg_args, len(rep))
se_ours = np.array([models["gamma_gamma"]["std_errors"][k] for k in ("p", "q", "gamma")], dtype=float)
d = np.max(np.abs(se_ours / se_lt - 1))
check("Gamma-Gamma standard errors", d < 1e-5, f"patronage {np.round(se_ours, 6).tolist()} | lifetimes {np.round(se_lt, 6).tolist()} | max rel diff {d:.2e}")

# 4. End to end with each tool's own fit.
bgf.params_ = pd.Series([lt_bg[k] for k in ("r", "alpha", "a", "b")], index=["r", "alpha", "a", "b"])
d1 = np.max(np.abs(bgf.conditional_probability_alive(x, tx, T) - s["p_alive"].to_numpy()))
d2 = np.max(np.abs(bgf.conditional_expected_number_of_purchases_up_to_time(horizon, x, tx, T) - s["expected_purchases"].to_numpy()))
check("own fits: p_alive and expected purchases", d1 < 1e-3 and d2 < 1e-3, f"max |diff| p_alive {d1:.2e}, expected {d2:.2e}")

# 5. The other customer-base models.
names = {"mbgnbd": ("MBG/NBD", ModifiedBetaGeoFitter, ("r", "alpha", "a", "b")),
         "pareto_nbd": ("Pareto/NBD", ParetoNBDFitter, ("r", "alpha", "s", "beta"))}
gx, gtx, gT, gw = (grouped[c].to_numpy().astype(float) for c in ("btyd_x", "btyd_t_x", "btyd_T", "w"))
for key, where in others.items():
    label, Fitter, keys = names[key]
    m = json.load(open(f"{where}/manifests/{as_of}.json"))["models"]
    check(f"{label}: chosen and fitted", m["customer_model"] == key and m[key]["status"] == "ok", m[key].get("status"))
    ours = dict(m[key]["params"])
    lt = Fitter().fit(grouped["btyd_x"], grouped["btyd_t_x"], grouped["btyd_T"], weights=grouped["w"])
    lt_params = {k: float(lt.params_[k]) for k in keys}

    def ll_of(params):
        p = [params[k] for k in keys]
        if key == "mbgnbd":
            return -Fitter._negative_log_likelihood(np.log(p), gx, gtx, gT, gw, 0.0) * gw.sum()
        return float((gw * ParetoNBDFitter._conditional_log_likelihood(p, gx, gtx, gT)).sum())

    a, b = ll_of(ours), ll_of(lt_params)
    check(f"{label} log-likelihood no worse than lifetimes", a >= b - 1e-6 * n,
          f"patronage {a:.6f} (manifest {m[key]['log_likelihood']:.6f}) vs lifetimes {b:.6f}; "
          + "patronage " + ", ".join(f"{k}={ours[k]:.6g}" for k in keys)
          + " | lifetimes " + ", ".join(f"{k}={lt_params[k]:.6g}" for k in keys))
    lt.params_ = pd.Series([ours[k] for k in keys], index=list(keys))
    s2 = table("churn_scores", where).set_index("customer_id").loc[buyers.index]
    p_alive = np.asarray(lt.conditional_probability_alive(x, tx, T), dtype=float)
    d = np.max(np.abs(p_alive - s2["p_alive"].to_numpy()))
    check(f"{label} p_alive at equal parameters", d < 1e-6, f"max |diff| {d:.2e} over {len(s2)} customers")
    expected = np.asarray(lt.conditional_expected_number_of_purchases_up_to_time(horizon, x, tx, T), dtype=float)
    d = np.max(np.abs(expected - s2["expected_purchases"].to_numpy()))
    check(f"{label} expected purchases ({horizon} days) at equal parameters", d < 1e-6, f"max |diff| {d:.2e}")
    if key == "pareto_nbd":
        none = np.array([lt.conditional_probability_of_n_purchases_up_to_time(0, float(horizon), a_, b_, c_)
                         for a_, b_, c_ in zip(x, tx, T)], dtype=float)
        d = np.max(np.abs((1 - none) - s2["p_purchase"].to_numpy()))
        check(f"{label} p_purchase = 1 - P(0 purchases) at equal parameters", d < 1e-6, f"max |diff| {d:.2e}")

if failures:
    print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
    sys.exit(1)
print("all parity checks passed")
