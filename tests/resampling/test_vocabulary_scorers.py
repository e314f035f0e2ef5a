"""Issue 22: the scorers take any vocabulary's classes and attributes (MSP-Podcast's by default)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from ser_diag.resampling import attribute_statistics, categorical_statistics, confusion_statistics


def test_categorical_statistics_over_named_classes_equal_sklearn():
    classes = ("angry", "calm", "sad", "tense", "joy")
    rng = np.random.default_rng(3)
    t, p = rng.integers(0, 5, 80), rng.integers(0, 5, 80)
    out = categorical_statistics(t, p, labels=classes)(np.ones((1, 80)))
    expected = f1_score(t, p, average="macro", labels=range(5), zero_division=0)
    assert float(out["macro_f1"][0]) == pytest.approx(expected, abs=1e-12)
    assert {k for k in out if k.startswith("recall_")} == {f"recall_{c}" for c in classes}
    assert set(confusion_statistics(np.eye(2), labels=("x", "y"))) >= {"f1_x", "f1_y"}


def test_attribute_statistics_named_by_the_vocabulary():
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (50, 2))
    y = 0.5 * x + rng.normal(0, 0.2, (50, 2))
    out = attribute_statistics(x, y, attributes=("arousal", "valence"))(np.ones((1, 50)))
    for j, name in enumerate(("arousal", "valence")):
        a, b = x[:, j], y[:, j]
        lin = 2 * np.mean((a - a.mean()) * (b - b.mean())) / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
        assert float(out[f"ccc_{name}"][0]) == pytest.approx(lin, abs=1e-9)
    assert "ccc_EmoAct" in attribute_statistics(np.ones((3, 3)), np.ones((3, 3)))(np.ones((1, 3)))
