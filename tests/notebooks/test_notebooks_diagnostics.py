"""The diagnostics notebooks run headless (papermill, kernel python3) on a small simulated
challenge, are committed without outputs, and produce what they promise."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
FIGURE_STEMS = ("fig3a_confusion_categorical", "fig3b_binned_arousal", "fig4_topk_fusion",
                "regression_to_mean_extremes", "gender_audit_attributes")


def execute(name: str, tmp_path: Path, monkeypatch, **parameters) -> nbformat.NotebookNode:
    """Run a notebook as a person does: kernel started in ``notebooks/``, the installed package,
    no PYTHONPATH."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    papermill.execute_notebook(str(NOTEBOOKS / name), str(tmp_path / name), parameters=parameters,
                               kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
    return nbformat.read(tmp_path / name, as_version=4)


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


@pytest.mark.parametrize("name", ["02_regenerate_paper_figures.ipynb", "03_audit_gender_bias.ipynb"])
def test_committed_without_outputs_and_parametrised(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "DATA_DIR = None" in tagged[0].source and "N_BOOT" in tagged[0].source
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.slow
def test_regenerate_paper_figures_notebook(tmp_path, monkeypatch):
    out = tmp_path / "figures"
    nb = execute("02_regenerate_paper_figures.ipynb", tmp_path, monkeypatch, N_FILES=600, N_SYSTEMS=3, N_BOOT=50,
                 OUT_DIR=str(out))
    text = outputs_text(nb)
    assert "error" not in {o.get("output_type") for c in nb.cells for o in c.get("outputs", [])}
    for stem in FIGURE_STEMS:
        assert (out / f"{stem}.png").is_file() and (out / f"{stem}.pdf").is_file(), stem
        assert stem in text                              # shown inline, by name
    assert images(nb) >= len(list(out.glob("*.png")))    # every written figure was displayed
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "50 resamples" in summary and "SYNTHETIC" in summary.upper()
    assert "ser_diag summary" in text                    # the Markdown summary is shown
    assert "systems: ['sys01_baseline', 'sys02_mid', 'sys03_top']" in text
    assert "resampling unit: speaker" in text
    metrics = pd.read_csv(out / "tables" / "metrics.csv")
    assert set(metrics["system"]) == {"sys01_baseline", "sys02_mid", "sys03_top"}
    assert (metrics["n_boot"] == 50).all()


@pytest.mark.slow
def test_audit_gender_bias_notebook(tmp_path, monkeypatch):
    out = tmp_path / "audit"
    nb = execute("03_audit_gender_bias.ipynb", tmp_path, monkeypatch, N_FILES=900, N_SYSTEMS=2, N_BOOT=50,
                 OUT_DIR=str(out))
    text = outputs_text(nb)
    assert "error" not in {o.get("output_type") for c in nb.cells for o in c.get("outputs", [])}
    assert images(nb) >= 4                               # gap + speaker figure per task
    for phrase in ("worst speakers", "median width ratio speaker / utterance", "recall Fear",
                   "SD ratio (pred / true)", "speaker permutation", "resampling unit: speaker"):
        assert phrase in text, phrase
    # people read human names and one p-value format; the CSVs keep the machine names
    assert "ccc_EmoAct" not in text and "recall_F" not in text
    assert not re.search(r"\b\d\.\d+e-\d\d\b", text)
    assert re.search(r"\b0\.\d{3}\b|< 0\.001", text)
    gaps = pd.read_csv(out / "gender_gaps.csv")
    assert set(gaps["task"]) == {"categorical", "attributes"}
    assert set(gaps["system"]) == {"sys01_baseline", "sys02_top"}
    assert gaps["p_value"].between(1 / 51, 1).all()
    assert (gaps["gap"] - (gaps["estimate_a"] - gaps["estimate_b"])).abs().max() < 1e-9
    widths = pd.read_csv(out / "ci_width_utterance_vs_speaker.csv")
    ratio = widths["speaker / utterance"].dropna()
    assert len(ratio) > 0 and ratio.median() > 1.0       # clustered resampling is wider
    assert json.loads(json.dumps(nb.metadata.get("papermill", {}).get("parameters", {})))["N_BOOT"] == 50
