"""Committed reference predictions (issue 23): exported byte for byte from a pipeline folder,
read back by the seed comparison as a pipeline folder, and compared with a fresh run."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from ser_diag.models.comparison import compare_pipeline_seeds
from ser_diag.models.reference_predictions import (export_predictions, fresh_vs_committed, is_complete,
                                                   prediction_folders)
from ser_diag.resampling import Resampling
from ser_diag.simulate import simulate_challenge

SYSTEMS = ("audio_egemaps", "text_minilm", "late_fusion")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A pipeline-shaped folder (seed 0 under predictions_test3/, seeds 1 and 2 under seeds/)
    made of simulated Test3 systems, as run_reference_pipeline(comparison_seeds=3) lays it out."""
    root = tmp_path_factory.mktemp("refpred")
    corpus = root / "corpus"
    simulate_challenge(corpus, seed=4, n_systems=3, split="Test3", n=300)
    labels_file = corpus / "Labels" / "labels_consensus.csv"   # the comparison resamples speakers: all known
    labels = pd.read_csv(labels_file, dtype={"SpkrID": str})
    unknown = labels["SpkrID"] == "Unknown"
    labels.loc[unknown, "SpkrID"] = [str(90000 + i) for i in range(int(unknown.sum()))]
    labels.to_csv(labels_file, index=False)
    made = sorted(p for p in (corpus / "predictions").iterdir() if p.is_dir())
    out = root / "pipeline"
    runs = {}
    for seed in (0, 1, 2):
        base = out if seed == 0 else out / "seeds" / f"seed{seed}"
        for k, system in enumerate(SYSTEMS):
            shutil.copytree(made[(k + seed) % len(made)], base / "predictions_test3" / system)
            shutil.copytree(made[(k + seed) % len(made)], base / "predictions" / system)  # Development: not exported
            runs.setdefault(system, {})[str(seed)] = {
                "Development": str((base / "predictions" / system).relative_to(out)),
                "Test3": str((base / "predictions_test3" / system).relative_to(out))}
    (out / "pipeline.json").write_text(json.dumps({
        "note": "synthetic", "seed": 0, "systems": [{"system_name": s} for s in SYSTEMS], "seconds": {"x": 1.23},
        "comparison": {"seeds": [0, 1, 2], "runs": runs}}))
    return corpus, out


def test_export_copies_the_split_byte_for_byte(pipeline, tmp_path):
    corpus, out = pipeline
    committed = export_predictions(out, tmp_path / "committed")
    assert is_complete(committed, out)
    folders = prediction_folders(committed)
    assert sorted(folders) == sorted(prediction_folders(out)) and len(folders) == 9
    assert not (committed / "predictions").exists()          # Test3 only
    for relative, folder in folders.items():
        for name in ("categorical.csv", "attributes.csv"):
            assert (folder / name).read_bytes() == (out / relative / name).read_bytes()
    manifest = json.loads((committed / "pipeline.json").read_text())
    assert "seconds" not in manifest                          # nothing that depends on the machine
    assert manifest["comparison"]["runs"]["late_fusion"]["2"] == {"Test3": "seeds/seed2/predictions_test3/late_fusion"}
    again = export_predictions(out, tmp_path / "again")
    for path in sorted(p for p in committed.rglob("*") if p.is_file()):
        assert path.read_bytes() == (again / path.relative_to(committed)).read_bytes()
    # the seed comparison reads the committed folder as it reads the pipeline folder
    settings = Resampling(n_boot=50)
    pd.testing.assert_frame_equal(compare_pipeline_seeds(corpus, committed, resampling=settings),
                                  compare_pipeline_seeds(corpus, out, resampling=settings))


def test_fresh_vs_committed_measures_the_drift(pipeline, tmp_path):
    corpus, out = pipeline
    committed = export_predictions(out, tmp_path / "committed")
    same = fresh_vs_committed(out, committed, corpus)
    assert len(same) == 9 and (same["class_agreement"] == 1).all()
    assert (same[["max_abs_diff_attribute", "max_abs_diff_metric"]] == 0).all().all()
    # a fresh run whose attributes moved by 1e-5 on one file (float32 training on another CPU)
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    path = moved / "predictions_test3" / "late_fusion" / "attributes.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "EmoAct"] += 1e-5
    frame.to_csv(path, index=False, float_format="%.6g")
    drift = fresh_vs_committed(moved, committed, corpus).set_index("folder")
    row = drift.loc["predictions_test3/late_fusion"]
    assert row["max_abs_diff_attribute"] == pytest.approx(1e-5, rel=0.2)
    assert 0 < row["max_abs_diff_metric"] < 1e-4
    assert row["ccc_EmoAct_fresh"] != row["ccc_EmoAct_committed"]
    assert np.isclose(row["macro_f1_fresh"], row["macro_f1_committed"])
    assert (drift.drop(index="predictions_test3/late_fusion")["max_abs_diff_metric"] == 0).all()
    assert not is_complete(tmp_path / "absent", out)
