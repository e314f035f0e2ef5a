"""What a run writes and reads back: checkpoints (``best.pt``, ``last.pt`` with everything an
exact resume needs; written atomically), loading them onto any device, resuming a run, and the
prediction files in the challenge layout.

Imports :mod:`.distributed` only (the run it saves or resumes is passed in).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from ser_diag.models.train.distributed import _gather_objects, _process_seed, _seed_everything
from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    """Restore :func:`_rng_state` output, wherever its tensors were loaded (generator states are
    CPU byte tensors whatever device the model is on)."""
    torch.set_rng_state(torch.as_tensor(state["torch"]).to("cpu", torch.uint8))
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.as_tensor(s).to("cpu", torch.uint8) for s in state["cuda"]])


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save_checkpoints(run, epoch: int, dev: dict, improved: bool) -> None:
    """End of an epoch of ``run`` (a :class:`ser_diag.models.train.loop._Run`): ``best.pt`` when
    the monitored score ``improved``, ``last.pt`` with everything an exact resume needs (every
    process's generator state, gathered from all processes), and ``metrics.jsonl``; process 0
    writes them."""
    rng = _gather_objects(_rng_state(), run.ctx)
    if run.ctx.main:
        if improved:
            _atomic_save({"model": run.model.state_dict(), "epoch": epoch, "dev": dev}, run.ckpt_dir / "best.pt")
        _atomic_save({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                      "scheduler": run.scheduler.state_dict(),
                      "scaler": run.scaler.state_dict() if run.scaler else None,
                      "rng": rng[0], "rng_per_rank": rng,
                      "sampler": {**run.sampler.state_dict(), "next_epoch": epoch + 1},
                      "epoch": epoch, "best_score": run.best_score, "best_epoch": run.best_epoch,
                      "bad_epochs": run.bad_epochs, "history": run.history, "config": run.config.to_dict()},
                     run.ckpt_dir / "last.pt")
        (run.run_dir / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in run.history))


def load_checkpoint(path, map_location="cpu") -> dict:
    """A ``last.pt``/``best.pt`` checkpoint with its model and optimizer tensors on
    ``map_location``; random-generator states always stay CPU byte tensors (``torch`` refuses
    others), so a run saved on one device resumes on another."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if str(map_location) != "cpu":
        def move(x):
            if torch.is_tensor(x):
                return x.to(map_location)
            if isinstance(x, dict):
                return {k: move(v) for k, v in x.items()}
            if isinstance(x, list):
                return [move(v) for v in x]
            return x
        for key in ("model", "optimizer"):
            if key in ckpt:
                ckpt[key] = move(ckpt[key])
    return ckpt


def _resume(run) -> None:
    """Restore ``run`` (a :class:`ser_diag.models.train.loop._Run`) from its ``last.pt``."""
    ckpt = load_checkpoint(run.ckpt_dir / "last.pt", run.device)
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    if run.scaler is not None and ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]
    if run.ctx.rank < len(per_rank):
        _set_rng_state(per_rank[run.ctx.rank])
    else:  # more processes than saved: a fresh stream for this one
        _seed_everything(_process_seed(run.config.seed + ckpt["epoch"] + 1, run.ctx.rank))
    run.start_epoch, run.best_score, run.best_epoch = ckpt["epoch"] + 1, ckpt["best_score"], ckpt["best_epoch"]
    run.bad_epochs, run.history = ckpt["bad_epochs"], ckpt["history"]


# --------------------------------------------------------------------------- prediction files

def predictions_dir(out_dir, system_name: str, split: str = "Development") -> Path:
    """Folder of one system's prediction files for one split: ``predictions/<system>`` for
    Development (the diagnostics' default split), ``predictions_<split lower>/<system>`` else;
    one split per folder, so the diagnostics merge them with that split's labels unchanged."""
    folder = "predictions" if split == "Development" else f"predictions_{split.lower()}"
    return Path(out_dir) / folder / system_name


def _write_predictions(path: Path, names: np.ndarray, probs: np.ndarray, attrs: np.ndarray, tasks,
                       vocabulary: Vocabulary = MSP_PODCAST) -> None:
    """``categorical.csv`` and ``attributes.csv`` of the tasks trained, with the vocabulary's
    codes and names (:mod:`ser_diag.models.prediction_files`; MSP-Podcast: the challenge's)."""
    from ser_diag.models.prediction_files import prediction_frame, write_predictions
    path.mkdir(parents=True, exist_ok=True)
    frame = prediction_frame(names, probs if TASK_CATEGORICAL in tasks else None,
                             attrs if TASK_ATTRIBUTES in tasks else None, vocabulary)
    write_predictions(frame, path, vocabulary)
