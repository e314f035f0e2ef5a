"""The README's main command, on its diagnostics half (the modelling half is exercised by the
models' own tests and notebooks), run through the installed `ser-diag` script: the numbers it
reports equal an independent computation from the files it wrote, and every output says the
data are synthetic."""

import json
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from reference_metrics import reference_ccc
from sklearn.metrics import f1_score

from ser_diag.schema import ATTRIBUTES, CLASS_CODES, SYNTHETIC_BANNER


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    out, figures = root / "demo", root / "figures"
    run = subprocess.run([shutil.which("ser-diag"), "demo", "--quick", "--skip-models",
                          "--out", str(out), "--figures", str(figures)],
                         cwd=root, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, MPLBACKEND="Agg"))
    assert run.returncode == 0, run.stderr[-2000:]
    return run, out, figures / "simulated_challenge"


def test_demo_scores_equal_an_independent_computation(demo):
    _, out, _ = demo
    challenge = out / "simulated_challenge"
    labels = pd.read_csv(challenge / "Labels" / "labels_consensus.csv")
    labels = labels[labels["Split_Set"] == "Development"].set_index("FileName")
    systems = json.loads((out / "demo_results.json").read_text())["simulated_challenge"]["systems"]
    assert sorted(systems) == sorted(p.name for p in (challenge / "predictions").iterdir())
    for name, result in systems.items():
        cat = pd.read_csv(challenge / "predictions" / name / "categorical.csv").set_index("FileName")
        scored = labels[labels["EmoClass"].isin(CLASS_CODES)]
        expected_f1 = f1_score(scored["EmoClass"], cat.loc[scored.index, "EmoClass"],
                               labels=list(CLASS_CODES), average="macro", zero_division=0)
        assert result["macro_f1"] == pytest.approx(expected_f1, abs=1e-9), name
        att = pd.read_csv(challenge / "predictions" / name / "attributes.csv").set_index("FileName")
        expected_ccc = {a: reference_ccc(labels[a], att.loc[labels.index, a]) for a in ATTRIBUTES}
        for attribute, value in expected_ccc.items():
            assert result["ccc"][attribute] == pytest.approx(value, abs=1e-9), (name, attribute)
        assert result["ccc_mean"] == pytest.approx(np.mean(list(expected_ccc.values())), abs=1e-9)


def test_demo_figures_tables_and_report_agree(demo):
    run, out, part = demo
    results = json.loads((out / "demo_results.json").read_text())["simulated_challenge"]["systems"]
    metrics = pd.read_csv(part / "tables" / "metrics.csv")
    for name, result in results.items():
        row = metrics[(metrics["system"] == name) & (metrics["metric"] == "macro_f1")].iloc[0]
        assert row["estimate"] == pytest.approx(result["macro_f1"], abs=1e-9)
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
    best = max(results, key=lambda s: results[s]["macro_f1"])
    summary = (part / "summary.md").read_text()
    assert f"| {best} | {results[best]['macro_f1']:.3f} [" in summary
    html = (out / "reports" / "simulated_challenge" / "index.html").read_text()
    assert f"{results[best]['macro_f1']:.3f}" in html
    for text in (run.stdout, summary, html):
        assert SYNTHETIC_BANNER in text
    assert metrics["synthetic"].all()
    for stem in ("fig3a_confusion_categorical", "fig3b_binned_arousal", "fig4_topk_fusion"):
        assert (part / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert (part / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
