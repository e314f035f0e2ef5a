"""A whole synthetic challenge on disk (:func:`simulate_challenge`): labels, every system's
predictions, ``SYNTHETIC_DEMO.txt`` and ``simulation_truth.json`` (the planted values), written
all or nothing. Imports every other module of :mod:`ser_diag.simulate` but
:mod:`~ser_diag.simulate.calibration`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.io import (
    write_attribute_predictions,
    write_categorical_predictions,
    write_labels_consensus,
    write_labels_detailed,
)
from ser_diag.outputs import check_writable, staged_output
from ser_diag.schema import CLASS_CODES, SYNTHETIC_BANNER
from ser_diag.simulate.labels import podcast_of, simulate_labels
from ser_diag.simulate.predictions import simulate_systems
from ser_diag.simulate.specs import SystemSpec, _error_correlation, _resolve_specs
from ser_diag.simulate.structure import STRUCTURE_DEFAULTS, plant_structure, vote_agreement

def _split_params(params: dict) -> tuple[dict, dict]:
    """Route ``simulate_challenge`` keyword arguments to the label or the system simulator."""
    label_keys = set(inspect.signature(simulate_labels).parameters) - {"n", "split", "seed"}
    system_keys = ({"specs", "error_correlation", "tie"} | set(STRUCTURE_DEFAULTS)
                   | {f.name for f in dataclasses.fields(SystemSpec)} - {"name"})
    unknown = set(params) - label_keys - system_keys
    if unknown:
        raise TypeError(f"unknown simulation parameters {sorted(unknown)}")
    return ({k: v for k, v in params.items() if k in label_keys},
            {k: v for k, v in params.items() if k in system_keys})


def _speaker_summary(labels: pd.DataFrame) -> dict:
    per = labels.groupby("SpkrID").size()
    gender = labels.groupby("SpkrID")["Gender"].first()
    return {"n_speakers": int(per.size), "files_per_speaker_median": float(per.median()),
            "files_per_speaker_max": int(per.max()), "speakers_with_100_or_more_files": int((per >= 100).sum()),
            "share_files_unknown_speaker": float(labels["SpkrID"].isna().mean()),
            "share_files_unknown_gender": float(labels["Gender"].isna().mean()),
            "n_speakers_unknown_gender": int(gender.isna().sum()),
            "n_podcasts": int(len(set(podcast_of(labels["FileName"]))))}


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def simulate_challenge(
    out: str | os.PathLike,
    seed: int = 0,
    n_systems: int = 8,
    split: str = "Development",
    n: int | None = None,
    **params,
) -> Path:
    """Write a synthetic challenge in the official layouts and return ``out``.

    Files (all-or-nothing, through :func:`ser_diag.outputs.staged_output`)::

        out/Labels/labels_consensus.csv      official header
        out/Labels/labels_detailed.csv       release 1.x FileName,EmoDetail layout
        out/predictions/<system>/categorical.csv   FileName,EmoClass,P_A..P_N
        out/predictions/<system>/attributes.csv    FileName,EmoAct,EmoVal,EmoDom
        out/SYNTHETIC_DEMO.txt               banner, seed and parameters
        out/simulation_truth.json            the planted parameters of every system

    ``params`` go to :func:`simulate_labels` (``class_mix``, ``extra_share``, ...) or to
    :func:`simulate_systems` (``specs``, ``error_correlation`` or any :class:`SystemSpec` field).
    """
    check_writable(out)  # before computing: one line, not a traceback after it
    label_params, system_params = _split_params(params)
    labels, detailed = simulate_labels(n, split=split, seed=seed, **label_params)
    error_correlation = _error_correlation(system_params.pop("error_correlation", None))
    structure_params = {k: system_params.pop(k) for k in list(system_params) if k in STRUCTURE_DEFAULTS}
    tie = system_params.pop("tie", True)
    given_specs = system_params.pop("specs", None)
    specs = _resolve_specs(n_systems, given_specs, system_params)
    tied = None
    if tie and given_specs is None and len(specs) >= 5:
        # two mid systems with the same planted quality and independent errors: a tie
        a, b = specs[-3], specs[-2]
        specs[-3] = dataclasses.replace(b, name=a.name)
        tied = {"systems": [a.name, b.name], "difference": 0.0,
                "planted": "the same SystemSpec apart from the name; independent errors "
                           "(shared only through error_correlation), so every metric differs by 0 "
                           "in expectation"}
    agreement = vote_agreement(labels, detailed)
    structure = plant_structure(labels, seed, agreement=agreement, **structure_params)
    predictions = simulate_systems(labels, seed=seed, specs=specs, error_correlation=error_correlation,
                                   structure=structure)

    counts = labels["EmoClass"].value_counts()
    truth = {
        "synthetic": True,
        "seed": seed,
        "split": split,
        "n": len(labels),
        "labels": {**label_params, "class_counts": {c: int(counts.get(c, 0)) for c in CLASS_CODES + ("O", "X")}},
        "error_correlation": error_correlation,
        "model": "see ser_diag.simulate module docstring and plant_structure",
        "systems": [dataclasses.asdict(s) for s in specs],
        "speakers": _speaker_summary(labels),
        "structure": structure["truth"],
        "tie": tied,
        "gender_gap": {"per_system": {s.name: s.gender_gap for s in specs},
                       "model": "noise x (1 + g/2) female, x (1 - g/2) male; the gap_speakers "
                                "(structure) carry an extra share"},
    }
    truth = _jsonable(truth)
    with staged_output(out) as stage:
        write_labels_consensus(labels, stage / "Labels" / "labels_consensus.csv")
        write_labels_detailed(detailed, stage / "Labels" / "labels_detailed.csv", layout="1.x")
        n_files = len(labels)
        for i, spec in enumerate(specs):
            block = predictions.iloc[i * n_files:(i + 1) * n_files]
            folder = stage / "predictions" / spec.name
            write_categorical_predictions(block, folder / "categorical.csv")
            write_attribute_predictions(block, folder / "attributes.csv")
        (stage / "simulation_truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
        (stage / "SYNTHETIC_DEMO.txt").write_text(
            f"{SYNTHETIC_BANNER}\n\nWritten by ser_diag.simulate.simulate_challenge.\n"
            f"seed: {seed}\nsplit: {split}\nn: {len(labels)}\nn_systems: {len(specs)}\n"
            f"parameters:\n{json.dumps(truth, indent=2)}\n",
            encoding="utf-8")
    return Path(out)
