"""The reference systems' committed predictions, which the demo diagnoses.

Training the reference models is float32 arithmetic: another CPU, BLAS or thread count sums in
another order and the predictions move (measured in the README, "Reference models"), and
with them the attribute tables and figures under ``figures/reference_models/``. So
``ser-diag demo`` trains the systems into the ignored ``data/demo/reference_models/`` as
always, but diagnoses the predictions committed in ``data/reference_predictions/`` (this
module's layout), and reports how far its fresh predictions are from them
(:func:`fresh_vs_committed`). ``ser-diag demo --refresh-reference-predictions`` overwrites the
committed files with the fresh ones, deliberately (:func:`export_predictions`).

Layout (a pipeline folder reduced to one split, so
:func:`ser_diag.models.comparison.compare_pipeline_seeds` reads it as it reads a pipeline run)::

    data/reference_predictions/
      README.md, SYNTHETIC_DEMO.txt
      pipeline.json                          systems, seeds, the seed comparison's folders
      predictions_test3/<system>/{categorical,attributes}.csv     every reference system, seed 0
      seeds/seed<k>/predictions_test3/<system>/...               comparison systems, seeds 1, 2

The files are the bytes the pipeline wrote (predictions at
:data:`ser_diag.precision.PREDICTION_DIGITS` significant digits). Torch-free.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.precision import dumps_json
from ser_diag.schema import ATTRIBUTES, SYNTHETIC_BANNER

#: Where the demo keeps them, relative to the repository root (the demo's working folder).
DEFAULT_FOLDER = Path("data/reference_predictions")
MANIFEST = "pipeline.json"
PREDICTION_FILES = ("categorical.csv", "attributes.csv")

_README = """# Reference systems' predictions (committed; synthetic)

> **{banner}**

Predictions of the reference systems that `ser-diag demo` trains on its synthetic speech corpus
(`make_corpus(n=600, seed=0)`), on the {split} split: every reference system with seed 0 under
`{folder}/`, and the fusion-vs-single-modality comparison's other seeds under `seeds/`.
`ser-diag demo` diagnoses *these* files into `figures/reference_models/`, so the committed
figures do not depend on the float32 training arithmetic of the machine that runs it; it still
trains the systems (into `data/demo/reference_models/`) and reports how far the fresh
predictions are from these (`data/demo/reference_models/fresh_vs_committed.csv`).
`ser-diag demo --refresh-reference-predictions` replaces them with the fresh ones.
Written by `ser_diag.models.reference_predictions.export_predictions`.
"""


def _split_folder(split: str) -> str:
    return "predictions" if split == "Development" else f"predictions_{split.lower()}"


def prediction_folders(root: str | os.PathLike, split: str = "Test3") -> dict[str, Path]:
    """``{relative folder: path}`` of every system's predictions of ``split`` under a pipeline
    folder or a committed one: ``predictions_test3/<system>`` and
    ``seeds/seed<k>/predictions_test3/<system>``, sorted."""
    root = Path(root)
    found = {}
    for parent in [root / _split_folder(split), *sorted((root / "seeds").glob(f"seed*/{_split_folder(split)}"))]:
        if parent.is_dir():
            for folder in sorted(p for p in parent.iterdir() if p.is_dir()):
                found[folder.relative_to(root).as_posix()] = folder
    return found


def export_predictions(pipeline_out: str | os.PathLike, dest: str | os.PathLike = DEFAULT_FOLDER,
                       split: str = "Test3") -> Path:
    """Copy the ``split`` predictions of a pipeline run (:func:`run_reference_pipeline` with a
    seed comparison) to ``dest``, replacing what is there, with a reduced ``pipeline.json``;
    return ``dest``. The prediction files are copied byte for byte."""
    source, dest = Path(pipeline_out), Path(dest)
    summary = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    folders = prediction_folders(source, split)
    if not folders:
        raise ValueError(f"{source} has no {split} predictions")
    stage = dest.parent / f".{dest.name}.staging"
    shutil.rmtree(stage, ignore_errors=True)
    for relative, folder in folders.items():
        for name in PREDICTION_FILES:
            if (folder / name).is_file():
                (stage / relative).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / name, stage / relative / name)
    comparison = summary.get("comparison") or {}
    manifest = {"note": summary.get("note", ""), "split": split, "seed": summary.get("seed"),
                "systems": [s["system_name"] for s in summary.get("systems", [])]}
    if comparison:
        manifest["comparison"] = {"seeds": comparison["seeds"], "runs": {
            system: {seed: {split: folders[split]} for seed, folders in by_seed.items()}
            for system, by_seed in comparison["runs"].items()}}
    (stage / MANIFEST).write_text(dumps_json(manifest, indent=2) + "\n", encoding="utf-8")
    (stage / "README.md").write_text(_README.format(banner=SYNTHETIC_BANNER, split=split,
                                                    folder=_split_folder(split)), encoding="utf-8")
    if (source / "SYNTHETIC_DEMO.txt").is_file():
        shutil.copyfile(source / "SYNTHETIC_DEMO.txt", stage / "SYNTHETIC_DEMO.txt")
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(stage, dest)
    return dest


def is_complete(committed: str | os.PathLike, pipeline_out: str | os.PathLike, split: str = "Test3") -> bool:
    """True when ``committed`` holds a manifest and every prediction folder of ``split`` that
    the pipeline run ``pipeline_out`` wrote (the same systems and seeds)."""
    committed = Path(committed)
    return (committed / MANIFEST).is_file() and \
        set(prediction_folders(committed, split)) == set(prediction_folders(pipeline_out, split))


def fresh_vs_committed(fresh: str | os.PathLike, committed: str | os.PathLike, labels: str | os.PathLike,
                       split: str = "Test3") -> pd.DataFrame:
    """How far a fresh pipeline run's ``split`` predictions are from the committed ones, one row
    per prediction folder: ``folder, n, class_agreement`` (share of files with the same class),
    ``max_abs_diff_prob`` (largest difference of a class probability), ``max_abs_diff_attribute``
    (of an attribute value, 1-7 scale), and the challenge scores of both (``macro_f1_fresh,
    macro_f1_committed, ccc_<attribute>_fresh, ..._committed``) with ``max_abs_diff_metric``."""
    from ser_diag.evaluate import evaluate_paths
    from ser_diag.resampling import Resampling

    fresh_folders, committed_folders = prediction_folders(fresh, split), prediction_folders(committed, split)
    rows = []
    for relative in sorted(set(fresh_folders) & set(committed_folders)):
        new, old = fresh_folders[relative], committed_folders[relative]
        row = {"folder": relative}
        cat_new = pd.read_csv(new / "categorical.csv").set_index("FileName")
        cat_old = pd.read_csv(old / "categorical.csv").set_index("FileName")
        if set(cat_new.index) != set(cat_old.index):
            raise ValueError(f"{new} and {old} predict different files: the committed predictions are of "
                             "another corpus (refresh them: ser-diag demo --refresh-reference-predictions)")
        cat_old = cat_old.loc[cat_new.index]
        probs = [c for c in cat_new.columns if c.startswith("P_")]
        row["n"] = len(cat_new)
        row["class_agreement"] = float((cat_new["EmoClass"] == cat_old["EmoClass"]).mean())
        row["max_abs_diff_prob"] = float(np.abs(cat_new[probs].to_numpy() - cat_old[probs].to_numpy()).max()) \
            if probs else float("nan")
        att_new = pd.read_csv(new / "attributes.csv").set_index("FileName")
        att_old = pd.read_csv(old / "attributes.csv").set_index("FileName").loc[att_new.index]
        row["max_abs_diff_attribute"] = float(np.abs(att_new[list(ATTRIBUTES)].to_numpy()
                                                     - att_old[list(ATTRIBUTES)].to_numpy()).max())
        scores = {}
        for which, folder in (("fresh", new), ("committed", old)):
            result = evaluate_paths(labels, folder, split=split, resampling=Resampling(n_boot=0))
            result = result["systems"][folder.name] if "systems" in result else result
            scores[f"macro_f1_{which}"] = result["macro_f1"]
            scores.update({f"ccc_{a}_{which}": result["ccc"][a] for a in ATTRIBUTES})
        for metric in ["macro_f1"] + [f"ccc_{a}" for a in ATTRIBUTES]:
            row[f"{metric}_fresh"], row[f"{metric}_committed"] = scores[f"{metric}_fresh"], scores[f"{metric}_committed"]
        row["max_abs_diff_metric"] = max(abs(row[f"{m}_fresh"] - row[f"{m}_committed"])
                                         for m in ["macro_f1"] + [f"ccc_{a}" for a in ATTRIBUTES])
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["DEFAULT_FOLDER", "export_predictions", "fresh_vs_committed", "is_complete", "prediction_folders"]
