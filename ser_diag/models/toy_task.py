"""A small planted feature task for tests, examples and launch scripts (no corpus needed).

``make_task`` returns labels in the challenge layout and two feature stores: ``audio`` carries
arousal/dominance and some class cues, ``text`` carries valence and the class. Running the module
trains one system on it, which is what ``torchrun`` launches for the distributed checks::

    python -m torch.distributed.run --nproc_per_node=2 -m ser_diag.models.toy_task OUT CONFIG_JSON
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

from ser_diag.schema import CLASS_CODES


def make_task(n: int = 160, seed: int = 0, frames: bool = False):
    """Labels + ``{"audio": ArrayFeatures, "text": ArrayFeatures}``; splits Train 60 % /
    Development 25 % / Test3 15 %; about 8 % of rows are ``X`` (attributes only).
    ``frames=True``: each file is a short sequence of noisy copies of its vector."""
    from ser_diag.models.train import ArrayFeatures

    rng = np.random.default_rng(seed)
    cls = rng.choice(8, size=n, p=[.2, .1, .2, .08, .05, .05, .07, .25])
    codes = np.array(CLASS_CODES, dtype=object)[cls]
    codes[rng.random(n) < 0.08] = "X"
    act = np.clip(4 + 1.5 * rng.standard_normal(n), 1, 7)
    val = np.clip(4 + 1.5 * rng.standard_normal(n), 1, 7)
    dom = np.clip(0.6 * act + 1.6 + 0.7 * rng.standard_normal(n), 1, 7)
    names = [f"MSP-PODCAST_{i:04d}_0001.wav" for i in range(n)]
    split = np.select([np.arange(n) < 0.6 * n, np.arange(n) < 0.85 * n], ["Train", "Development"], "Test3")
    labels = pd.DataFrame({"FileName": names, "EmoClass": codes, "EmoAct": act, "EmoVal": val, "EmoDom": dom,
                           "SpkrID": pd.array(rng.integers(1, 20, n), dtype="Int64"),
                           "Gender": rng.choice(["Female", "Male"], n), "Split_Set": split})
    one_hot = np.eye(8)[cls]
    audio = np.c_[act, dom, one_hot[:, [0, 1, 3]]] + 0.5 * rng.standard_normal((n, 5))
    text = np.c_[val, one_hot] + 0.5 * rng.standard_normal((n, 9))
    if frames:
        audio = [np.repeat(a[None], rng.integers(2, 9), 0) + 0.1 * rng.standard_normal((1, 5)) for a in audio]
        text = [np.repeat(t[None], rng.integers(1, 6), 0) for t in text]
    return labels, {"audio": ArrayFeatures(names, audio), "text": ArrayFeatures(names, text)}


def main(argv=None) -> None:
    """``OUT CONFIG_JSON [N]``: train the config (or each config of a JSON list, one after the
    other in the same processes) on ``make_task(N, frames=True)`` into ``OUT``."""
    from ser_diag.models.train import train

    argv = sys.argv[1:] if argv is None else argv
    configs = json.loads(argv[1])
    labels, feats = make_task(n=int(argv[2]) if len(argv) > 2 else 160, frames=True)
    for config in configs if isinstance(configs, list) else [configs]:
        train(dict(config, out_dir=argv[0]), features=feats, labels=labels)


if __name__ == "__main__":
    main()


def write_toy_corpus(root, labels: pd.DataFrame, seconds: float = 0.6, seed: int = 0):
    """Audio and transcripts for ``labels`` in MSP-Podcast layout under ``root`` (no labels files):
    each clip a noisy tone whose level and pitch rise with arousal, each transcript a word or two
    that follow valence. Returns ``root``."""
    from pathlib import Path

    import soundfile as sf

    root = Path(root)
    (root / "Audios").mkdir(parents=True, exist_ok=True)
    (root / "Transcripts").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    for name, act, val in zip(labels["FileName"], labels["EmoAct"], labels["EmoVal"]):
        level = 0.05 + 0.1 * (float(act) - 1) / 6
        wave = level * np.sin(2 * np.pi * (100 + 30 * float(act)) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(root / "Audios" / name, wave.astype(np.float32), 16_000, subtype="FLOAT")
        word = "great lovely" if float(val) > 4.5 else "awful sad" if float(val) < 3.5 else "okay"
        (root / "Transcripts" / f"{Path(name).stem}.txt").write_text(word + "\n")
    return root
