"""Train or collect K systems and write each one's predictions in the challenge layout.

The diagnostics' top-K fusion and stacking (:mod:`ser_diag.analysis.fusion`) then read
``<out_dir>/predictions/<system>/`` like any team's submissions. An ensemble config (JSON)::

    {"out_dir": "runs/ensemble", "corpus": "data/demo/corpus",
     "defaults": {<TrainConfig keys shared by every system>},
     "seeds": [0, 1],                           # optional: every trained system once per seed
     "systems": [{"system_name": "late_fusion", "model": {"kind": "late_fusion"}, ...},
                 {"system_name": "team_x", "predictions": "path/to/team_x"}]}   # collected as is

A system with ``"predictions"`` is collected (read with :func:`ser_diag.io.read_predictions`,
so a malformed file fails early, and rewritten into the layout); every other system is trained
with :func:`ser_diag.models.train.train` on features extracted once per modality spec.

Any corpus: a top-level ``"vocabulary"`` (preset name, vocabulary file or its data; default
MSP-Podcast) reaches every system (a training config key) and the collected files are read and
written with it (:mod:`ser_diag.models.prediction_files`). A top-level ``"folds"`` (``true`` or
``{"column": "Split_Set", "sessions": [...], "development": "next"}``) trains every system
leave-one-session-out (:func:`ser_diag.models.folds.train_folds`, labels needed) and collects
its pooled predictions, ``<out_dir>/predictions_loso/<system>/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ser_diag.models.prediction_files import read_predictions, write_predictions
from ser_diag.models.train import TrainConfig, open_feature_store, train
from ser_diag.models.train.config import resolve_vocabulary
from ser_diag.precision import dumps_json


def expand_systems(config: dict, k: int | None = None) -> list[dict]:
    """System entries of an ensemble config: defaults merged in, seeds expanded
    (``<name>_seed<s>``), the first ``k`` kept.

    >>> expand_systems({"defaults": {"epochs": 3}, "seeds": [0, 1],
    ...                 "systems": [{"system_name": "a"}, {"system_name": "b", "predictions": "x"}]})
    [{'epochs': 3, 'system_name': 'a_seed0', 'seed': 0}, {'epochs': 3, 'system_name': 'a_seed1', 'seed': 1}, {'system_name': 'b', 'predictions': 'x'}]
    """
    defaults = {key: config[key] for key in ("out_dir", "corpus", "feature_cache", "vocabulary") if key in config}
    defaults.update(config.get("defaults", {}))
    entries = []
    for system in config["systems"]:
        if "predictions" in system:
            entries.append(dict(system))
        elif config.get("seeds"):
            entries.extend({**defaults, **system, "system_name": f"{system['system_name']}_seed{s}", "seed": s}
                           for s in config["seeds"])
        else:
            entries.append({**defaults, **system})
    return entries[:k] if k else entries


def _collect(entry: dict, out_dir: Path, vocabulary) -> Path:
    pred = read_predictions(entry["predictions"], vocabulary, system=entry["system_name"])
    folder = out_dir / "predictions" / entry["system_name"]
    write_predictions(pred, folder, vocabulary)
    return folder


def _folds_settings(config: dict) -> dict | None:
    """``train_folds`` keyword arguments of an ensemble config's ``"folds"``, or None."""
    folds = config.get("folds")
    if not folds:
        return None
    folds = {} if folds is True else dict(folds)
    unknown = sorted(set(folds) - {"column", "sessions", "development"})
    if unknown:
        raise ValueError(f"folds takes 'column', 'sessions' and 'development', not {unknown}")
    return folds


def ensemble(config: dict, k: int | None = None, features: dict | None = None, labels=None,
             soft_labels=None) -> list[dict]:
    """Train or collect the systems of an ensemble ``config`` (see the module docstring).

    ``features``: optional ``modality -> FeatureStore`` for every system (else each modality
    spec is extracted once and cached). Returns one summary dict per system and writes them to
    ``<out_dir>/ensemble.json``.
    """
    out_dir = Path(config["out_dir"])
    vocabulary = resolve_vocabulary(config.get("vocabulary"))
    folds = _folds_settings(config)
    if folds is not None and labels is None:
        if config.get("corpus") is None:
            raise ValueError("an ensemble with folds needs the labels (a frame, or the config's corpus)")
        from ser_diag.models.train.data import _read_labels
        labels = _read_labels(config["corpus"], vocabulary)
    summaries, stores = [], {}
    for entry in expand_systems(config, k):
        if "predictions" in entry:
            folder = _collect(entry, out_dir, vocabulary)
            summaries.append({"system_name": entry["system_name"], "predictions_dir": str(folder),
                              "trained": False})
            continue
        cfg = TrainConfig.from_dict(entry)
        system_features = features
        if system_features is None:
            cache = Path(cfg.feature_cache or Path(cfg.out_dir) / "features")
            for spec in cfg.modalities.values():
                key = json.dumps(spec, sort_keys=True)
                if key not in stores:
                    stores[key] = open_feature_store(cfg.corpus, spec, cache, cfg.progress)
            system_features = {m: stores[json.dumps(s, sort_keys=True)] for m, s in cfg.modalities.items()}
        if folds is not None:
            from ser_diag.models.folds import train_folds
            pooled = train_folds(cfg, labels, features=system_features, soft_labels=soft_labels, **folds)
            summaries.append({"system_name": cfg.system_name, "predictions_dir": str(pooled.predictions_dir),
                              "trained": True, "modalities": sorted(cfg.modalities), "model": cfg.model.get("kind"),
                              "seed": cfg.seed, "folds": pooled.summary(),
                              "seconds": round(sum(r.seconds for r in pooled.results), 2)})
            continue
        result = train(cfg, features=system_features, labels=labels, soft_labels=soft_labels)
        summaries.append({"system_name": cfg.system_name, "predictions_dir": str(result.predictions_dir),
                          "trained": True, "modalities": sorted(cfg.modalities), "model": cfg.model.get("kind"),
                          "categorical_loss": cfg.categorical_loss, "attribute_loss": cfg.attribute_loss,
                          "seed": cfg.seed, "monitor": result.monitor, "best_epoch": result.best_epoch,
                          "dev_metrics": result.dev_metrics, "n_parameters": result.n_parameters,
                          "seconds": round(result.seconds, 2)})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ensemble.json").write_text(dumps_json(summaries, indent=2))
    return summaries


def ensemble_from_config(path: str | os.PathLike, k: int | None = None) -> list[dict]:
    """:func:`ensemble` on a JSON config file (paths relative to the current directory)."""
    return ensemble(json.loads(Path(path).read_text()), k)


__all__ = ["ensemble", "ensemble_from_config", "expand_systems"]
