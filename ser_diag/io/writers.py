"""Writers of the official layouts (labels, detailed labels, predictions), atomically: the
modelling wing and the simulator write with them, so the diagnostics read their files like
any team's."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ser_diag.outputs import atomic_write_text
from ser_diag.precision import PREDICTION_FLOAT_FORMAT
from ser_diag.schema import (
    ATTRIBUTE_PREDICTION_COLUMNS,
    CATEGORICAL_PREDICTION_COLUMNS,
    CONSENSUS_COLUMNS,
    DETAILED_V1_COLUMNS,
    DETAILED_V2_COLUMNS,
    PROB_COLUMNS,
)


def _write_csv(df: pd.DataFrame, path: str | os.PathLike, float_format: str = PREDICTION_FLOAT_FORMAT) -> Path:
    return atomic_write_text(path, df.to_csv(index=False, float_format=float_format, lineterminator="\n"))


def write_labels_consensus(labels: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``Labels/labels_consensus.csv`` with the exact challenge header.

    Missing speaker/gender are written as ``Unknown`` as older releases do.
    """
    out = labels.loc[:, list(CONSENSUS_COLUMNS)].copy()
    out["SpkrID"] = out["SpkrID"].astype("object").where(out["SpkrID"].notna(), "Unknown")
    out["Gender"] = out["Gender"].astype("object").where(out["Gender"].notna(), "Unknown")
    return _write_csv(out, path, float_format="%.4g")


def write_labels_detailed(detailed: pd.DataFrame, path: str | os.PathLike, layout: str = "1.x") -> Path:
    """Write per-annotator labels in the release-1.x (``EmoDetail`` string) or 2.0 layout.

    ``detailed`` has columns ``FileName, WorkerID, EmoClass_Major, EmoClass_Second, EmoAct,
    EmoVal, EmoDom`` where ``EmoClass_Major`` is a long name (``Angry`` ... or ``Other-...``).
    1.x string: ``"WORKER00012; Angry; Frustrated,Annoyed; A:5.0; V:2.0; D:6.0;"``.
    """
    if layout == "2.0":
        return _write_csv(detailed.loc[:, list(DETAILED_V2_COLUMNS)], path, float_format="%.1f")
    if layout != "1.x":
        raise ValueError(f"layout must be '1.x' or '2.0', not {layout!r}")
    second = detailed["EmoClass_Second"].fillna("").astype(str)
    detail = (detailed["WorkerID"].astype(str) + "; " + detailed["EmoClass_Major"].astype(str) + "; "
              + second + "; A:" + detailed["EmoAct"].map("{:.1f}".format)
              + "; V:" + detailed["EmoVal"].map("{:.1f}".format)
              + "; D:" + detailed["EmoDom"].map("{:.1f}".format) + ";")
    out = pd.DataFrame({DETAILED_V1_COLUMNS[0]: detailed["FileName"].to_numpy(),
                        DETAILED_V1_COLUMNS[1]: detail.to_numpy()})
    return _write_csv(out, path)


def write_categorical_predictions(predictions: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``FileName,EmoClass`` (+ ``P_A..P_N`` when present) for one system, numbers at
    :data:`~ser_diag.precision.PREDICTION_FLOAT_FORMAT`."""
    cols = list(CATEGORICAL_PREDICTION_COLUMNS) + [c for c in PROB_COLUMNS if c in predictions]
    return _write_csv(predictions.loc[:, cols], path, float_format=PREDICTION_FLOAT_FORMAT)


def write_attribute_predictions(predictions: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``FileName,EmoAct,EmoVal,EmoDom`` (1-7 scale) for one system."""
    return _write_csv(predictions.loc[:, list(ATTRIBUTE_PREDICTION_COLUMNS)], path,
                      float_format=PREDICTION_FLOAT_FORMAT)
