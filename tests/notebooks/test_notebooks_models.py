"""The modelling notebooks (04 train, 05 inspect, 06 ensembles) run headless with papermill on a
tiny synthetic demo corpus, are committed without outputs, and report numbers that an
independent computation from their prediction files reproduces.

Notebook 04 synthesises the corpus and the feature cache into one work folder; 05 and 06 reuse
both (as a user would), so the three run in about a minute of CPU time together.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest
from sklearn.metrics import f1_score

from ser_diag.schema import ATTRIBUTES, CLASS_CODES, SYNTHETIC_BANNER

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
NAMES = ("04_train_reference_fusion.ipynb", "05_inspect_fusion_model.ipynb", "06_ensembles.ipynb")
TINY = {"N_FILES": 60, "EPOCHS": 3, "N_BOOT": 20}
REFERENCE = ["audio_egemaps", "cross_attention", "late_fusion", "text_minilm"]
ENSEMBLE = {"SYSTEMS": ["audio_egemaps", "text_minilm", "late_fusion"], "SEEDS": [0, 1], "K": 5, "N_SPLITS": 2}


def execute(name: str, out_dir: Path, **parameters) -> dict:
    """Run one notebook with papermill (cwd = notebooks/); return the executed notebook,
    its JSON result line, wall and CPU seconds (the kernel is a child process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
        papermill.execute_notebook(str(NOTEBOOKS / name), str(out_dir / name), parameters=parameters,
                                   kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    nb = nbformat.read(out_dir / name, as_version=4)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    lines = "".join(o.get("text", "") for o in last.outputs if o.get("output_type") == "stream").splitlines()
    return {"nb": nb, "result": json.loads([x for x in lines if x.startswith("{")][-1]),
            "wall": time.perf_counter() - start,
            "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("notebooks")
    work = out / "work"
    runs = {"04": execute(NAMES[0], out, WORK_DIR=str(work), **TINY)}
    shared = dict(TINY, WORK_DIR=str(work), CORPUS_DIR=str(work / "corpus"))
    runs["05"] = execute(NAMES[1], out, N_UTTERANCES=2, **shared)
    runs["06"] = execute(NAMES[2], out, **ENSEMBLE, **shared)
    runs["work"] = work
    return runs


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def errors(nb) -> list:
    return [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def labels_and_predictions(corpus: Path, predictions: Path, system: str, split: str = "Test3"):
    """Independent of ser_diag.io: plain CSV reads and a join on FileName."""
    labels = pd.read_csv(corpus / "Labels" / "labels_consensus.csv")
    labels = labels[labels["Split_Set"] == split].set_index("FileName")
    cat = pd.read_csv(predictions / system / "categorical.csv").set_index("FileName")
    att = pd.read_csv(predictions / system / "attributes.csv").set_index("FileName")
    return labels, cat.reindex(labels.index), att.reindex(labels.index)


def lin_ccc(x: np.ndarray, y: np.ndarray) -> float:
    return 2 * np.cov(x, y, ddof=0)[0, 1] / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def macro_f1(labels: pd.DataFrame, cat: pd.DataFrame) -> float:
    keep = labels["EmoClass"].isin(CLASS_CODES)
    return f1_score(labels.loc[keep, "EmoClass"], cat.loc[keep, "EmoClass"], labels=list(CLASS_CODES),
                    average="macro", zero_division=0)


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs_parametrised_and_marked_synthetic(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    for knob in ("CORPUS_DIR = None", "WORK_DIR = None", "N_FILES = ", "EPOCHS = ", "N_BOOT = "):
        assert knob in code[0].source, knob
    assert any(SYNTHETIC_BANNER in c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.slow
def test_train_reference_fusion(runs):
    nb, result, work = runs["04"]["nb"], runs["04"]["result"], runs["work"]
    assert not errors(nb)
    assert result["synthetic"] is True and result["systems"] == REFERENCE and result["n_boot"] == 20
    assert result["epochs_run"] == {s: 3 for s in ("audio_egemaps", "text_minilm", "late_fusion", "cross_attention")}
    assert images(nb) >= 1                                               # training curves
    corpus = Path(result["corpus"])
    assert corpus == work / "corpus" and (corpus / "SYNTHETIC_DEMO.txt").is_file()
    for system in REFERENCE:                                             # one log line per epoch
        assert len((work / "runs" / system / "metrics.jsonl").read_text().splitlines()) == 3
        assert (work / "predictions" / system / "categorical.csv").is_file()  # Development too
    # the winner of each metric is the argmax of an independent computation
    cccs, f1s = {}, {}
    for system in REFERENCE:
        labels, cat, att = labels_and_predictions(corpus, work / "predictions_test3", system)
        assert cat["EmoClass"].notna().all() and att[list(ATTRIBUTES)].notna().all(axis=None)
        f1s[system] = macro_f1(labels, cat)
        cccs[system] = lin_ccc(labels["EmoVal"].to_numpy(float), att["EmoVal"].to_numpy(float))
    assert result["winners"]["macro_f1"] == max(f1s, key=f1s.get)
    assert result["winners"]["ccc_EmoVal"] == max(cccs, key=cccs.get)
    assert set(result["winners"]) == {"macro_f1", "accuracy", "uar", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom",
                                      "ccc_mean"}
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert SYNTHETIC_BANNER in text and "Per-class F1" in text         # evaluate's table is shown


@pytest.mark.slow
def test_inspect_fusion_model(runs):
    nb, result, work = runs["05"]["nb"], runs["05"]["result"], runs["work"]
    assert not errors(nb)
    assert result["synthetic"] is True and result["split"] == "Test3"
    assert images(nb) >= 5          # ablation, attention maps, confusion, binned valence, regression to the mean
    corpus = work / "corpus"
    for system in REFERENCE:        # modality ablation = CCC recomputed from the prediction files
        labels, _, att = labels_and_predictions(corpus, work / "predictions_test3", system)
        for a in ATTRIBUTES:
            expected = lin_ccc(labels[a].to_numpy(float), att[a].to_numpy(float))
            assert result["ccc"][system][f"ccc_{a}"] == pytest.approx(expected, abs=1e-4), (system, a)
    gain = result["ccc"]["late_fusion"]["ccc_EmoVal"] - result["ccc"]["audio_egemaps"]["ccc_EmoVal"]
    assert result["fusion_minus_audio_valence"] == pytest.approx(gain, abs=2e-4)
    n_utterances, n_audio, n_text = result["attention_shape"]
    assert n_utterances == 2 and n_audio > 1 and n_text > 1
    assert len(result["attention_files"]) == 2


@pytest.mark.slow
def test_ensembles(runs):
    nb, result, work = runs["06"]["nb"], runs["06"]["result"], runs["work"]
    assert not errors(nb)
    expected = [f"{s}_seed{k}" for s in ENSEMBLE["SYSTEMS"] for k in ENSEMBLE["SEEDS"]][:ENSEMBLE["K"]]
    assert result["systems"] == expected
    predictions = work / "ensemble" / "predictions_test3"
    for folder in ("predictions", "predictions_test3"):               # Development, Test3
        assert sorted(p.name for p in (work / "ensemble" / folder).iterdir()) == sorted(expected)
    assert result["curve_k"] == list(range(1, 6)) and result["curve_tasks"] == ["attributes", "categorical"]
    assert result["stacking_systems"] == sorted(expected + ["stacking"])
    assert 0 <= result["stacking_macro_f1"] <= 1
    assert images(nb) >= 2                                               # fusion curve, disagreement
    # K = 1 of the curve is the top-ranked system alone, scored on the evaluation split
    labels, cat, _ = labels_and_predictions(work / "corpus", predictions, result["top_categorical"])
    assert result["k1_plurality_macro_f1"] == pytest.approx(macro_f1(labels, cat), abs=1e-9)
