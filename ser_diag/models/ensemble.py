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
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ser_diag.models.train import TrainConfig, open_feature_store, train
from ser_diag.precision import dumps_json
from ser_diag.schema import ATTRIBUTES, PROB_COLUMNS


def expand_systems(config: dict, k: int | None = None) -> list[dict]:
    """System entries of an ensemble config: defaults merged in, seeds expanded
    (``<name>_seed<s>``), the first ``k`` kept.

    >>> expand_systems({"defaults": {"epochs": 3}, "seeds": [0, 1],
    ...                 "systems": [{"system_name": "a"}, {"system_name": "b", "predictions": "x"}]})
    [{'epochs': 3, 'system_name': 'a_seed0', 'seed': 0}, {'epochs': 3, 'system_name': 'a_seed1', 'seed': 1}, {'system_name': 'b', 'predictions': 'x'}]
    """
    defaults = {key: config[key] for key in ("out_dir", "corpus", "feature_cache") if key in config}
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


def _collect(entry: dict, out_dir: Path) -> Path:
    from ser_diag.io import read_predictions, write_attribute_predictions, write_categorical_predictions
    pred = read_predictions(entry["predictions"], system=entry["system_name"])
    folder = out_dir / "predictions" / entry["system_name"]
    if "EmoClass" in pred and pred["EmoClass"].notna().any():
        cat = pred[pred["EmoClass"].notna()]
        cols = ["FileName", "EmoClass"] + [c for c in PROB_COLUMNS if c in cat and cat[c].notna().all()]
        write_categorical_predictions(cat.loc[:, cols], folder / "categorical.csv")
    if all(a in pred for a in ATTRIBUTES) and pred[list(ATTRIBUTES)].notna().all(axis=1).any():
        write_attribute_predictions(pred[pred[list(ATTRIBUTES)].notna().all(axis=1)], folder / "attributes.csv")
    return folder


def ensemble(config: dict, k: int | None = None, features: dict | None = None, labels=None,
             soft_labels=None) -> list[dict]:
    """Train or collect the systems of an ensemble ``config`` (see the module docstring).

    ``features``: optional ``modality -> FeatureStore`` for every system (else each modality
    spec is extracted once and cached). Returns one summary dict per system and writes them to
    ``<out_dir>/ensemble.json``.
    """
    out_dir = Path(config["out_dir"])
    summaries, stores = [], {}
    for entry in expand_systems(config, k):
        if "predictions" in entry:
            folder = _collect(entry, out_dir)
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
