"""Cross-validation over a corpus' own sessions: leave-one-session-out (LOSO), as IEMOCAP is
usually scored, pooled into one prediction set.

:func:`train_folds` trains one model per held-out session with
:func:`ser_diag.models.train.train` on the same features: in fold ``s`` the files of session
``s`` are the test files (split ``"Test"``), the files of the session after it (cyclically)
are the development files that pick the best epoch (``development="next"``; ``None``: no
development files, the last epoch is kept), and every other file trains. Each file of a
session is predicted exactly once, by the model that did not see its session; the fold
predictions are pooled into one set, one row per file, written with the corpus' vocabulary
(:mod:`ser_diag.models.prediction_files`) to ``<out_dir>/predictions_loso/<system>/``, ready
for ``ser_diag.io.merge(labels, predictions, task, vocabulary=...)``. Files without a session
(``<NA>``) and sessions not listed in ``sessions`` only ever train.

A corpus without sessions (CREMA-D, EmoDB) gets speaker-disjoint folds first:
:func:`speaker_folds`. Each fold's run lives in ``<out_dir>/folds/<session>/`` (its
``runs/<system>/`` and ``predictions_test/<system>/``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.models.prediction_files import read_predictions, write_predictions
from ser_diag.models.train import TrainConfig, predictions_dir, train
from ser_diag.models.train.config import effective_tasks
from ser_diag.models.train.data import _labels_frame

__all__ = ["Fold", "FoldsResult", "HELD_OUT", "LOSO_SPLIT", "session_folds", "speaker_folds", "train_folds",
           "train_folds_from_config"]

#: The split name of a fold's held-out files in its labels (its ``predict_splits``).
HELD_OUT = "Test"
#: The split name under which the pooled predictions are written (``predictions_loso``).
LOSO_SPLIT = "LOSO"


@dataclass(frozen=True)
class Fold:
    """One fold: the ``held_out`` session, the ``development`` session (or None), and
    ``labels`` with ``Split_Set`` rewritten to ``Train``/``Development``/``Test``."""

    held_out: str
    development: str | None
    labels: pd.DataFrame = field(repr=False)

    def files(self, split: str) -> set:
        """The files of ``split`` (``"Train"``, ``"Development"``, :data:`HELD_OUT`) in this fold."""
        return set(self.labels.loc[self.labels["Split_Set"] == split, "FileName"].astype(str))


@dataclass
class FoldsResult:
    """What :func:`train_folds` did: the pooled ``predictions`` (one row per held-out file,
    ``system, FileName, EmoClass, P_<code>..., <attribute>...``), the folder they are written
    to, ``held_out`` (FileName -> the session whose model predicted it), the folds, and one
    :class:`~ser_diag.models.train.TrainResult` per fold."""

    system_name: str
    predictions: pd.DataFrame = field(repr=False)
    predictions_dir: Path
    held_out: pd.Series = field(repr=False)
    folds: list = field(repr=False)
    results: list = field(repr=False)

    def summary(self) -> list[dict]:
        """Per fold: held-out and development session, file counts, best epoch and score."""
        return [{"held_out": f.held_out, "development": f.development, "n_train": len(f.files("Train")),
                 "n_development": len(f.files("Development")), "n_test": len(f.files(HELD_OUT)),
                 "best_epoch": r.best_epoch, "monitor": r.monitor,      # no development files: the last epoch
                 "best_score": r.best_score if np.isfinite(r.best_score) else None}
                for f, r in zip(self.folds, self.results)]


def _sessions(labels: pd.DataFrame, column: str, sessions) -> list[str]:
    if column not in labels:
        raise ValueError(f"labels have no column {column!r} holding the sessions")
    present = pd.unique(labels[column].dropna().astype(str))
    if sessions is None:
        return sorted(present)
    sessions = [str(s) for s in sessions]
    missing = [s for s in sessions if s not in set(present)]
    if missing:
        raise ValueError(f"session {missing[0]!r} has no files (sessions present: {', '.join(sorted(present))})")
    return sessions


def session_folds(labels: pd.DataFrame, column: str = "Split_Set", sessions=None,
                  development: str | None = "next") -> list[Fold]:
    """The leave-one-session-out folds of ``labels`` (see the module docstring): one per session
    of ``column`` (``sessions``: which and in which order; default all, sorted), the session
    after the held-out one as development (``development="next"``) or none (``None``).

    >>> labels = pd.DataFrame({"FileName": list("abcd"), "Split_Set": ["S1", "S1", "S2", "S3"]})
    >>> [(f.held_out, f.development, sorted(f.files("Train"))) for f in session_folds(labels)]
    [('S1', 'S2', ['d']), ('S2', 'S3', ['a', 'b']), ('S3', 'S1', ['c'])]
    """
    if development not in ("next", None):
        raise ValueError(f"development must be 'next' or None, not {development!r}")
    names = _sessions(labels, column, sessions)
    minimum = 3 if development == "next" else 2
    if len(names) < minimum:
        raise ValueError(f"{len(names)} session(s) make no leave-one-session-out folds "
                         f"(at least {minimum} with development={development!r})")
    session = labels[column].astype(object).where(labels[column].notna(), None).map(
        lambda s: None if s is None else str(s)).to_numpy(dtype=object)
    folds = []
    for i, held_out in enumerate(names):
        dev = names[(i + 1) % len(names)] if development == "next" else None
        split = np.where(session == held_out, HELD_OUT, np.where(session == dev, "Development", "Train"))
        fold_labels = labels.copy()
        fold_labels["Split_Set"] = pd.array(split, dtype="str")
        folds.append(Fold(held_out, dev, fold_labels))
    return folds


def speaker_folds(labels: pd.DataFrame, k: int = 5, seed: int = 0, column: str = "Split_Set") -> pd.DataFrame:
    """``labels`` with ``column`` set to ``Fold1`` .. ``Fold<k>``: speakers (``SpkrID``) dealt
    to the folds in a seeded random order, so the folds are speaker-disjoint (a corpus without
    sessions, e.g. CREMA-D); :func:`train_folds` then leaves one fold out at a time.

    >>> labels = pd.DataFrame({"FileName": list("abcdef"), "SpkrID": ["x", "x", "y", "z", "z", "w"]})
    >>> speaker_folds(labels, k=2).groupby("Split_Set")["SpkrID"].nunique().tolist()
    [2, 2]
    """
    if "SpkrID" not in labels or labels["SpkrID"].isna().any():
        raise ValueError("speaker folds need a speaker (SpkrID) for every file")
    speakers = np.array(sorted(pd.unique(labels["SpkrID"].astype(str))), dtype=object)
    if not 2 <= k <= len(speakers):
        raise ValueError(f"{len(speakers)} speakers make no {k} speaker-disjoint folds")
    order = np.random.default_rng(seed).permutation(len(speakers))
    fold_of = {speakers[j]: f"Fold{rank % k + 1}" for rank, j in enumerate(order)}
    out = labels.copy()
    out[column] = pd.array(out["SpkrID"].astype(str).map(fold_of).to_numpy(dtype=object), dtype="str")
    return out


def train_folds(config: TrainConfig | dict, labels: pd.DataFrame | None = None, *, features: dict | None = None,
                soft_labels: pd.DataFrame | None = None, column: str = "Split_Set", sessions=None,
                development: str | None = "next") -> FoldsResult:
    """Train one model per held-out session and pool their predictions (module docstring).

    ``config``: a :class:`~ser_diag.models.train.TrainConfig` (or its dict; its ``vocabulary``
    names the corpus, its ``out_dir`` holds the folds and the pooled predictions, its
    ``predict_splits`` are replaced by the held-out split); ``labels``: the internal labels
    frame whose ``column`` holds each file's session (default: read from ``config.corpus``
    with the vocabulary); ``features``: ``modality ->`` feature
    store shared by every fold (default: extracted from ``config.corpus``).
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    vocabulary = config.corpus_vocabulary
    config = dataclasses.replace(config, tasks=effective_tasks(config.tasks, vocabulary))  # warned once
    if labels is None:
        labels = _labels_frame(config, None)
    folds = session_folds(labels, column, sessions, development)
    results, parts = [], []
    for fold in folds:
        fold_config = dataclasses.replace(config, out_dir=str(Path(config.out_dir) / "folds" / fold.held_out),
                                          predict_splits=(HELD_OUT,), resume=False)
        result = train(fold_config, features=features, labels=fold.labels, soft_labels=soft_labels)
        if HELD_OUT not in result.prediction_dirs:
            raise ValueError(f"fold {fold.held_out}: the run wrote no predictions (cut short?)")
        predicted = read_predictions(result.prediction_dirs[HELD_OUT], vocabulary, system=config.system_name)
        expected = fold.files(HELD_OUT)
        if set(predicted["FileName"]) != expected:
            raise ValueError(f"fold {fold.held_out}: predictions for {len(predicted)} files, "
                             f"the session holds {len(expected)}")
        predicted["_held_out"] = fold.held_out
        results.append(result)
        parts.append(predicted)
    pooled = pd.concat(parts, ignore_index=True).sort_values("FileName", kind="stable").reset_index(drop=True)
    twice = pooled["FileName"].duplicated()
    if twice.any():
        raise ValueError(f"file {pooled['FileName'][twice].iloc[0]!r} is in two sessions")
    held_out = pd.Series(pooled.pop("_held_out").to_numpy(), index=pd.Index(pooled["FileName"]), name="held_out")
    folder = predictions_dir(config.out_dir, config.system_name, LOSO_SPLIT)
    write_predictions(pooled.drop(columns="system"), folder, vocabulary)
    pooled.attrs.update(path=str(folder), sources={config.system_name: {}}, synthetic=False)
    return FoldsResult(config.system_name, pooled, folder, held_out, folds, results)


def train_folds_from_config(path) -> FoldsResult:
    """:func:`train_folds` from a JSON file: :class:`~ser_diag.models.train.TrainConfig` keys
    (``corpus`` and ``vocabulary`` name the corpus) plus an optional ``"folds"``: ``{"column",
    "sessions", "development"}`` (default: every session of ``Split_Set``, the next one as
    development). Writes ``<out_dir>/folds.json`` (one summary per fold)."""
    import json
    import sys

    from ser_diag.precision import dumps_json

    data = json.loads(Path(path).read_text())
    folds = data.pop("folds", None) or {}
    if folds is True:
        folds = {}
    unknown = sorted(set(folds) - {"column", "sessions", "development"})
    if unknown:
        raise ValueError(f"folds takes 'column', 'sessions' and 'development', not {unknown}")
    result = train_folds(TrainConfig.from_dict(data), **folds)
    out = Path(result.predictions_dir).parents[1]
    (out / "folds.json").write_text(dumps_json({"system_name": result.system_name,
                                                "predictions_dir": str(result.predictions_dir),
                                                "folds": result.summary()}, indent=2))
    print(f"{result.system_name}: {len(result.folds)} folds pooled into {result.predictions_dir}", file=sys.stderr)
    return result
