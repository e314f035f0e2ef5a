"""The README's main command, on its diagnostics half (the modelling half is exercised by the
models' own tests and notebooks): every output exists and says the data are synthetic."""

import json
import subprocess
import sys
from pathlib import Path

from ser_diag.schema import SYNTHETIC_BANNER

ROOT = Path(__file__).resolve().parents[1]


def test_demo_writes_figures_report_and_results(tmp_path):
    out, figures = tmp_path / "demo", tmp_path / "figures"
    run = subprocess.run([sys.executable, "-m", "ser_diag", "demo", "--quick", "--skip-models",
                          "--out", str(out), "--figures", str(figures)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert SYNTHETIC_BANNER in run.stdout
    part = figures / "simulated_challenge"
    for stem in ("fig3a_confusion_categorical", "fig3b_binned_arousal", "fig3c_binned_valence",
                 "fig3d_binned_dominance", "fig4_topk_fusion", "regression_to_mean_extremes",
                 "gender_audit_attributes"):
        assert (part / f"{stem}.pdf").stat().st_size > 1000
        assert (part / f"{stem}.png").stat().st_size > 1000
    assert SYNTHETIC_BANNER in (part / "summary.md").read_text()
    html = (out / "reports" / "simulated_challenge" / "index.html").read_text()
    assert SYNTHETIC_BANNER in html
    results = json.loads((out / "demo_results.json").read_text())
    systems = results["simulated_challenge"]["systems"]
    assert len(systems) == 8
    assert all(s["synthetic"] for s in systems.values())
