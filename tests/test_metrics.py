"""ser_diag.metrics against scikit-learn, an independent CCC formula, and invariances."""


import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from ser_diag import metrics
from ser_diag.schema import CLASS_CODES
from reference_metrics import reference_ccc

CODES = np.array(CLASS_CODES)


def random_labels(rng, n, p_correct=0.4, classes=8):
    t = rng.integers(0, classes, n)
    p = np.where(rng.random(n) < p_correct, t, rng.integers(0, classes, n))
    return CODES[t], CODES[p]


@pytest.mark.parametrize("seed", range(5))
def test_categorical_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    # seed 3 leaves two classes out of the truth, seed 4 out of the predictions too
    classes = {3: 6, 4: 5}.get(seed, 8)
    y_true, y_pred = random_labels(rng, 300, classes=classes)
    labels = list(CLASS_CODES)
    assert metrics.macro_f1(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0), abs=1e-12)
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert metrics.unweighted_average_recall(y_true, y_pred) == pytest.approx(
        balanced_accuracy_score(y_true, y_pred), abs=1e-12)
    np.testing.assert_array_equal(metrics.confusion_counts(y_true, y_pred),
                                  confusion_matrix(y_true, y_pred, labels=labels))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    table = metrics.per_class_scores(y_true, y_pred)
    assert list(table.index) == labels
    np.testing.assert_allclose(table["precision"], p, atol=1e-12)
    np.testing.assert_allclose(table["recall"], r, atol=1e-12)
    np.testing.assert_allclose(table["f1"], f, atol=1e-12)
    np.testing.assert_array_equal(table["support"], s)


def test_unknown_code_raises():
    with pytest.raises(ValueError, match="not in labels"):
        metrics.macro_f1(["A", "Q"], ["A", "A"])


def test_confusion_vectorised_over_leading_axes():
    rng = np.random.default_rng(1)
    cms = np.stack([metrics.confusion_counts(*random_labels(rng, 100)) for _ in range(4)])
    batched = metrics.macro_f1_from_confusion(cms)
    single = [metrics.macro_f1_from_confusion(cm) for cm in cms]
    np.testing.assert_allclose(batched, single, atol=1e-15)


@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("seed", range(4))
def test_ccc_matches_reference(seed, ddof):
    rng = np.random.default_rng(seed)
    x = rng.uniform(1, 7, 500)
    y = 0.5 * x + rng.normal(0.8, 0.9, 500)
    assert metrics.ccc(x, y, ddof=ddof) == pytest.approx(reference_ccc(x, y, ddof), abs=1e-9)
    assert metrics.pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)


def test_ccc_ddof1_matches_sample_variance_convention():
    # torchmetrics-style: var and cov with n-1, squared mean difference unscaled
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([2.0, 2.5, 3.0, 3.5])
    expected = 2 * np.cov(x, y, ddof=1)[0, 1] / (x.var(ddof=1) + y.var(ddof=1) + 0.25 ** 2)
    assert metrics.ccc(x, y, ddof=1) == pytest.approx(expected, abs=1e-12)
    assert metrics.ccc(x, y, ddof=1) == pytest.approx(80 / 103, abs=1e-12)


def test_degenerate_inputs_give_nan():
    assert np.isnan(metrics.ccc([3.0, 3.0, 3.0], [3.0, 3.0, 3.0]))
    assert metrics.ccc([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]) == 0.0  # defined: denominator > 0
    assert np.isnan(metrics.pearson([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]))
    assert np.isnan(metrics.ccc([1.0], [2.0], ddof=1))
    d = metrics.lin_decomposition([1.0, 2.0, 3.0], [4.0, 4.0, 4.0])
    assert np.isnan(d["rho"]) and np.isnan(d["scale_v"]) and d["ccc"] == 0.0
    assert np.isnan(metrics.weighted_ccc([[1, 1, 1]], [2.0, 2.0, 2.0], [2.0, 2.0, 2.0]))[0]
    assert np.isnan(metrics.weighted_ccc([[0, 1, 0]], [1.0, 2.0, 3.0], [1.0, 2.5, 3.0], ddof=1))[0]


finite = st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False)
pairs = st.integers(3, 40).flatmap(
    lambda n: st.tuples(arrays(np.float64, n, elements=finite), arrays(np.float64, n, elements=finite)))


def _not_degenerate(x, y):
    return np.std(x) > 1e-3 and np.std(y) > 1e-3


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(2, 40), elements=finite))
def test_ccc_of_identical_series_is_one(x):
    assume(np.std(x) > 1e-3)
    assert metrics.ccc(x, x) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ccc(x, x, ddof=1) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_ccc_symmetry_bound_and_factorisation(xy):
    x, y = xy
    assume(_not_degenerate(x, y))
    for ddof in (0, 1):
        d = metrics.lin_decomposition(x, y, ddof=ddof)
        assert metrics.ccc(y, x, ddof=ddof) == pytest.approx(d["ccc"], abs=1e-12)
        assert abs(d["ccc"]) <= abs(d["rho"]) + 1e-12
        assert d["rho"] * d["c_b"] == pytest.approx(d["ccc"], abs=1e-9)
        v, u = d["scale_v"], d["location_u"]
        assert 2 / (v + 1 / v + u * u) == pytest.approx(d["c_b"], rel=1e-12)
        assert d["ccc"] == pytest.approx(reference_ccc(x, y, ddof), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_ddof_effect(xy):
    # ddof=1 scales variances and covariance by k = n/(n-1) but not the squared mean gap:
    # CCC_1 = 2 k s_xy / (k (s_x^2 + s_y^2) + d^2), so |CCC_1| >= |CCC_0|, equal when d = 0.
    x, y = xy
    assume(_not_degenerate(x, y))
    n = len(x)
    k = n / (n - 1)
    c0, c1 = metrics.ccc(x, y), metrics.ccc(x, y, ddof=1)
    cov, gap2 = np.cov(x, y, ddof=0)[0, 1], (x.mean() - y.mean()) ** 2
    assert c1 == pytest.approx(2 * k * cov / (k * (x.var() + y.var()) + gap2), abs=1e-9)
    assert abs(c1) >= abs(c0) - 1e-12
    y_centred = y - y.mean() + x.mean()
    assert metrics.ccc(x, y_centred, ddof=1) == pytest.approx(metrics.ccc(x, y_centred), abs=1e-9)


@pytest.mark.parametrize("ddof", [0, 1])
def test_weighted_ccc_equals_repeated_data(ddof):
    rng = np.random.default_rng(7)
    n = 60
    x, y = rng.uniform(1, 7, n), rng.uniform(1, 7, n)
    y = 0.6 * x + 0.4 * y
    weights = rng.integers(0, 4, size=(12, n))
    weights[0] = 1
    got = metrics.weighted_ccc(weights, x, y, ddof=ddof)
    for b, w in enumerate(weights):
        idx = np.repeat(np.arange(n), w)
        assert got[b] == pytest.approx(reference_ccc(x[idx], y[idx], ddof), abs=1e-9)
    moments = metrics.weighted_moments(weights, x, y, ddof=ddof)
    idx = np.repeat(np.arange(n), weights[3])
    assert metrics.pearson_from_moments(moments)[3] == pytest.approx(
        np.corrcoef(x[idx], y[idx])[0, 1], abs=1e-9)


def test_weighted_confusion_equals_repeated_data():
    rng = np.random.default_rng(3)
    n = 200
    t, p = rng.integers(0, 8, n), rng.integers(0, 8, n)
    weights = rng.integers(0, 3, size=(9, n)).astype(np.float32)
    got = metrics.weighted_confusion(weights, t, p, k=8)
    assert got.shape == (9, 8, 8)
    for b, w in enumerate(weights):
        idx = np.repeat(np.arange(n), w.astype(int))
        np.testing.assert_array_equal(got[b], confusion_matrix(t[idx], p[idx], labels=range(8)))
        assert metrics.macro_f1_from_confusion(got[b]) == pytest.approx(
            f1_score(t[idx], p[idx], average="macro", labels=range(8), zero_division=0), abs=1e-12)



# --------------------------------------------------------------------------- conventions (issue 9)

def test_uar_convention_is_named_and_the_other_offered():
    from sklearn.metrics import balanced_accuracy_score, recall_score
    from ser_diag.evaluate import UAR_CONVENTION
    true = ["A", "A", "S", "S", "N", "N"]
    pred = ["A", "S", "S", "S", "N", "A"]
    present = metrics.unweighted_average_recall(true, pred)
    every = metrics.unweighted_average_recall(true, pred, classes="all")
    assert present == pytest.approx(balanced_accuracy_score(true, pred))
    assert every == pytest.approx(recall_score(true, pred, labels=list(CLASS_CODES), average="macro",
                                               zero_division=0))
    assert every == pytest.approx(present * 3 / 8)
    assert "balanced_accuracy_score" in UAR_CONVENTION and "audmetric" in UAR_CONVENTION
    with pytest.raises(ValueError):
        metrics.unweighted_average_recall(true, pred, classes="some")


def test_ccc_of_one_item_and_macro_f1_of_nothing_are_nan():
    assert np.isnan(metrics.ccc([3.0], [4.0]))                    # audmetric: nan, not 0
    assert np.isnan(metrics.weighted_ccc([[1.0]], [3.0], [4.0])[0])
    assert np.isnan(metrics.macro_f1([], []))
    assert np.isnan(metrics.macro_f1_from_confusion(np.zeros((8, 8))))
    assert metrics.ccc([1.0, 2.0], [1.0, 2.0]) == 1.0


def test_moment_design_gives_identical_sums_to_identical_systems():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    y = rng.normal(size=(500, 3))
    design = metrics.MomentDesign(x, np.stack([y, x, y]))
    w = rng.integers(0, 3, (40, 500)).astype(float)
    m = design.moments(w @ design.columns)
    assert np.array_equal(m[:, 0], m[:, 2])                       # exact ties for identical systems
    want = metrics.weighted_moments(w[:3], x[:, 1], y[:, 1])
    np.testing.assert_allclose(m[:3, 0, 1], want, rtol=1e-12, atol=1e-12)
    empty = metrics.MomentDesign(np.empty((0, 3)), np.empty((0, 3)))
    assert empty.columns.shape == (0, 1 + 2 * 3 + 3 * 3)


def test_moment_design_consuming_its_inputs_gives_the_same_bits():
    """consume=True shifts the caller's arrays in place instead of copying them: every sum is
    bit-identical to the copying design, for one series (shrinkage's pairs), an (n, S, A) array
    seen as (S, n, A), and with identical systems (the copying path)."""
    rng = np.random.default_rng(3)
    x = rng.normal(3, 1, size=(400, 3))
    items_major = rng.normal(3, 1, size=(400, 4, 3))
    w = rng.integers(0, 3, (20, 400)).astype(float)
    for y in (items_major[:, 0, :][None].copy(), items_major.transpose(1, 0, 2),
              np.stack([items_major[:, 0], items_major[:, 1], items_major[:, 0]])):
        copying = metrics.MomentDesign(x, y)
        expected = copying.moments(copying.product(w))
        x_own, y_own = x.copy(), y.copy() if y.base is None else y.transpose(1, 0, 2).copy().transpose(1, 0, 2)
        consuming = metrics.MomentDesign(x_own, y_own, consume=True)
        assert np.array_equal(consuming.moments(consuming.product(w)), expected)
        assert np.array_equal(consuming.columns, copying.columns)
        assert np.shares_memory(consuming._x, x_own)               # no copy of the truth


def test_quantile_bins_with_ties_report_their_actual_shares():
    from ser_diag.analysis.binned import bin_edges, bin_labels
    values = np.r_[np.linspace(1, 4, 60), np.full(20, 5.0), np.linspace(5.5, 7, 20)]  # ties on the 75% edge
    edges = bin_edges(values, "quantile")
    labels = bin_labels(edges, "quantile", values=values)
    counts = np.bincount(np.searchsorted(edges[1:-1], values, side="right"), minlength=3)
    assert labels[0].startswith(f"bottom {100 * counts[0] / values.size:.1f}".removesuffix(".0") + "%")
    assert labels[2].startswith(f"top {100 * counts[2] / values.size:.1f}".removesuffix(".0") + "%")
    assert labels[2].startswith("top 40%")
