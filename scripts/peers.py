"""What the peer stack does, shared by the races: patronage's clustering protocol in
scikit-learn, and the feature transform it clusters on."""
import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score


def standardize(columns):
    """patronage's transform of each column (floats, NaN = null): log1p when never negative,
    clip p1/p99, median impute, z-score. Returns the matrix."""
    out = []
    for v in columns:
        v = np.asarray(v, dtype=float)
        present = v[~np.isnan(v)]
        if (present >= 0).all():
            v = np.log1p(np.where(np.isnan(v), np.nan, np.maximum(v, 0)))
            present = v[~np.isnan(v)]
        lo, hi = np.quantile(present, 0.01), np.quantile(present, 0.99)
        v = np.clip(v, lo, hi)
        v[np.isnan(v)] = np.median(np.clip(present, lo, hi))
        sd = v.std()
        out.append((v - v.mean()) / (sd if sd > 1e-12 else 1.0))
    return np.column_stack(out)


def sklearn_protocol(x, seed=42):
    """k chosen on a 20,000-row sample (silhouette, Davies-Bouldin, Calinski-Harabasz ranks,
    smallest cluster ≥ 5%), k-means on every row from the sample's centres, 5 bootstrap refits
    for stability. Returns (k, the final model)."""
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), size=min(20_000, len(x)), replace=False)]
    sil = sample[rng.choice(len(sample), size=min(3_000, len(sample)), replace=False)]
    scores = []
    for k in range(3, 9):
        km = KMeans(k, n_init=3, random_state=seed).fit(sample)
        share = np.bincount(km.labels_, minlength=k).min() / len(sample)
        scores.append((k, silhouette_score(sil, km.predict(sil)), davies_bouldin_score(sample, km.labels_),
                       calinski_harabasz_score(sample, km.labels_), share))
    adm = [s for s in scores if s[4] >= 0.05] or scores

    def rank(i, sign):
        return {s[0]: 1 + sum(1 for t in adm if sign * t[i] > sign * s[i]) for s in adm}

    r1, r2, r3 = rank(1, 1), rank(2, -1), rank(3, 1)
    k = min(adm, key=lambda s: ((r1[s[0]] + r2[s[0]] + r3[s[0]]) / 3, -s[1]))[0]
    init = KMeans(k, n_init=10, random_state=seed).fit(sample).cluster_centers_
    final = KMeans(k, init=init, n_init=1).fit(x)
    for b in range(5):
        KMeans(k, n_init=3, random_state=100 + b).fit(sample[rng.integers(0, len(sample), len(sample))])
    return k, final
