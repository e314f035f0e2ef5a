"""ser_diag.evaluate and ``python -m ser_diag evaluate`` against independent computations."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_diag.resampling import Resampling
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ser_diag import io
from ser_diag.errors import InputError
from ser_diag.evaluate import evaluate_paths, format_text
from ser_diag.precision import dumps_json
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, SYNTHETIC_BANNER
from reference_metrics import reference_ccc

REPO = Path(__file__).resolve().parents[1]
CODES = np.array(CLASS_CODES)


@pytest.fixture(scope="module")
def challenge(tmp_path_factory):
    """Labels (Development with O/X rows and unknown speakers, plus Train rows) and three
    systems: alpha and beta submit both tasks, gamma only the categorical one."""
    root = tmp_path_factory.mktemp("challenge")
    rng = np.random.default_rng(0)
    n_dev, n_train = 300, 40
    n = n_dev + n_train
    classes = np.concatenate([CODES, ["O", "X"]])
    emo = classes[rng.choice(10, n, p=[.15, .1, .15, .05, .05, .05, .1, .25, .05, .05])]
    truth = np.round(rng.uniform(1, 7, (n, 3)), 1)
    speakers = pd.array(rng.integers(1, 30, n), dtype="Int64")
    speakers[:5] = pd.NA
    labels = pd.DataFrame({"FileName": [f"MSP-PODCAST_{i:04d}_0001.wav" for i in range(n)],
                           "EmoClass": emo, "EmoAct": truth[:, 0], "EmoVal": truth[:, 1],
                           "EmoDom": truth[:, 2], "SpkrID": speakers,
                           "Gender": np.where(rng.random(n) < 0.5, "Female", "Male"),
                           "Split_Set": ["Development"] * n_dev + ["Train"] * n_train})
    io.write_labels_consensus(labels, root / "Labels" / "labels_consensus.csv")
    dev = labels.iloc[:n_dev]
    systems = {}
    for name, quality in (("alpha", 0.6), ("beta", 0.4), ("gamma", 0.5)):
        true_idx = np.array([CLASS_CODES.index(c) if c in CLASS_CODES else 7 for c in dev["EmoClass"]])
        pred = CODES[np.where(rng.random(n_dev) < quality, true_idx, rng.integers(0, 8, n_dev))]
        attr = np.round(np.clip(quality * dev[list(ATTRIBUTES)].to_numpy() + (1 - quality) * 4
                                + rng.normal(0, 0.6, (n_dev, 3)), 1, 7), 3)
        folder = root / "predictions" / name
        io.write_categorical_predictions(pd.DataFrame({"FileName": dev["FileName"], "EmoClass": pred}),
                                         folder / "categorical.csv")
        if name != "gamma":
            frame = pd.DataFrame(attr, columns=list(ATTRIBUTES))
            frame.insert(0, "FileName", dev["FileName"].to_numpy())
            io.write_attribute_predictions(frame, folder / "attributes.csv")
        systems[name] = dict(EmoClass=pred, attributes=attr)
    return dict(root=root, dev=dev.reset_index(drop=True), systems=systems)


def expected_scores(challenge, name, ddof=0):
    dev, system = challenge["dev"], challenge["systems"][name]
    keep = dev["EmoClass"].isin(CLASS_CODES).to_numpy()
    t, p = dev["EmoClass"].to_numpy()[keep], system["EmoClass"][keep]
    labels = list(CLASS_CODES)
    out = dict(n_categorical=int(keep.sum()),
               macro_f1=f1_score(t, p, average="macro", labels=labels, zero_division=0),
               accuracy=accuracy_score(t, p), uar=balanced_accuracy_score(t, p),
               per_class_f1=dict(zip(labels, f1_score(t, p, average=None, labels=labels,
                                                      zero_division=0))))
    out["ccc"] = {a: reference_ccc(dev[a].to_numpy(), system["attributes"][:, j], ddof)
                  for j, a in enumerate(ATTRIBUTES)}
    return out


def test_directory_of_systems(challenge):
    root = challenge["root"]
    result = evaluate_paths(root, root / "predictions")
    assert set(result) == {"systems"}
    assert set(result["systems"]) == {"alpha", "beta", "gamma"}
    n_dev = len(challenge["dev"])
    for name in ("alpha", "beta"):
        obj, exp = result["systems"][name], expected_scores(challenge, name)
        assert obj["system"] == name
        assert obj["n"] == n_dev and obj["n_attributes"] == n_dev
        assert obj["n_categorical"] == exp["n_categorical"] < n_dev
        for key in ("macro_f1", "accuracy", "uar"):
            assert obj[key] == pytest.approx(exp[key], abs=1e-9), key
        assert obj["per_class_f1"] == pytest.approx(exp["per_class_f1"], abs=1e-9)
        assert list(obj["ccc"]) == list(ATTRIBUTES)
        assert obj["ccc"] == pytest.approx(exp["ccc"], abs=1e-9)
        assert obj["ccc_mean"] == pytest.approx(np.mean(list(exp["ccc"].values())), abs=1e-9)
        assert "ddof=0" in obj["ccc_convention"] and "population" in obj["ccc_convention"]
        assert obj["synthetic"] is False and "ci" not in obj
    gamma = result["systems"]["gamma"]
    assert gamma["ccc"] is None and gamma["ccc_mean"] is None and gamma["n_attributes"] is None
    assert gamma["n"] == gamma["n_categorical"] == expected_scores(challenge, "gamma")["n_categorical"]
    text = format_text(result)
    assert all(name in text for name in ("alpha", "beta", "gamma"))
    assert f"{result['systems']['alpha']['macro_f1']:.4f}" in text
    gamma_row = next(line.split() for line in text.splitlines() if line.startswith("gamma"))
    assert gamma_row[1:3] == [str(gamma["n_categorical"]), "-"]  # files scored per task
    assert SYNTHETIC_BANNER not in text


def test_single_system_with_bootstrap_and_ddof(challenge):
    root = challenge["root"]
    result = evaluate_paths(root / "Labels" / "labels_consensus.csv", root / "predictions" / "alpha",
                            n_boot=200, level=0.9, ddof=1, seed=3, unit="utterance")
    exp = expected_scores(challenge, "alpha", ddof=1)
    assert result["system"] == "alpha"
    assert result["ccc"] == pytest.approx(exp["ccc"], abs=1e-9)
    assert "ddof=1" in result["ccc_convention"]
    ci = result["ci"]
    assert ci["level"] == 0.9 and ci["unit"] == "utterance" and ci["n_boot"] == 200
    for metric, value in [("macro_f1", result["macro_f1"]), ("accuracy", result["accuracy"]),
                          ("uar", result["uar"]), ("ccc_mean", result["ccc_mean"])] + \
            [(f"ccc_{a}", result["ccc"][a]) for a in ATTRIBUTES]:
        assert ci[metric]["ci_low"] < value < ci[metric]["ci_high"], metric
    assert ci["f1_A"]["ci_low"] <= result["per_class_f1"]["A"] <= ci["f1_A"]["ci_high"]
    text = format_text(result)
    assert f"[{ci['macro_f1']['ci_low']:.4f}, {ci['macro_f1']['ci_high']:.4f}]" in text
    assert "90% percentile bootstrap" in text and "utterances" in text

    by_speaker = evaluate_paths(root, root / "predictions" / "alpha", n_boot=200, by_speaker=True)
    assert by_speaker["ci"]["unit"] == "speaker"
    default = evaluate_paths(root, root / "predictions" / "alpha", resampling=Resampling(n_boot=200))
    assert default["ci"]["unit"] == "speaker"      # speakers are known: the default unit
    assert default["ci"]["macro_f1"] == by_speaker["ci"]["macro_f1"]
    assert "balanced_accuracy_score" in default["uar_convention"]
    assert by_speaker["macro_f1"] == pytest.approx(result["macro_f1"], abs=1e-12)


def test_partial_predictions_need_intersection(challenge, tmp_path):
    dev = challenge["dev"]
    keep = dev.iloc[:200]
    pred = pd.DataFrame({"FileName": keep["FileName"], "EmoClass": challenge["systems"]["alpha"]["EmoClass"][:200]})
    io.write_categorical_predictions(pred, tmp_path / "partial.csv")
    with pytest.raises(InputError):
        evaluate_paths(challenge["root"], tmp_path / "partial.csv")
    result = evaluate_paths(challenge["root"], tmp_path / "partial.csv", intersection=True)
    covered = keep["EmoClass"].isin(CLASS_CODES)
    assert result["n"] == result["n_categorical"] == int(covered.sum())
    assert result["macro_f1"] == pytest.approx(
        f1_score(keep["EmoClass"][covered], pred["EmoClass"][covered], average="macro",
                 labels=list(CLASS_CODES), zero_division=0), abs=1e-9)


def test_synthetic_data_says_so(challenge, tmp_path):
    root = tmp_path / "synthetic"
    labels = io.read_labels(challenge["root"])
    io.write_labels_consensus(labels, root / "Labels" / "labels_consensus.csv")
    (root / "SYNTHETIC_DEMO.txt").write_text("synthetic\n")
    pred = pd.DataFrame({"FileName": challenge["dev"]["FileName"],
                         "EmoClass": challenge["systems"]["beta"]["EmoClass"]})
    io.write_categorical_predictions(pred, root / "predictions" / "beta.csv")
    result = evaluate_paths(root, root / "predictions" / "beta.csv")
    assert result["synthetic"] is True and result["system"] == "beta"
    assert format_text(result).startswith(SYNTHETIC_BANNER)


def test_cli_json_matches_library(challenge):
    root = challenge["root"]
    args = ["--labels", str(root), "--predictions", str(root / "predictions"),
            "--bootstrap", "50", "--by-speaker", "--seed", "1"]
    proc = subprocess.run([sys.executable, "-m", "ser_diag", "evaluate", *args, "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    library = evaluate_paths(root, root / "predictions", n_boot=50, by_speaker=True, seed=1)
    # printed at the precision of every written number (ser_diag.precision), nothing else changed
    assert printed == json.loads(dumps_json(library))
    assert printed["systems"]["alpha"]["macro_f1"] == pytest.approx(library["systems"]["alpha"]["macro_f1"],
                                                                    rel=1e-9)
    assert printed["systems"]["alpha"]["ci"]["unit"] == "speaker"
    assert printed["systems"]["gamma"]["ccc"] is None

    proc = subprocess.run([sys.executable, "-m", "ser_diag", "evaluate", *args[:4]],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "macro-F1" in proc.stdout and "alpha" in proc.stdout
