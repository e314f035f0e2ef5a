"""Small in-memory corpora of any vocabulary, merged as :func:`ser_diag.io.merge` merges them
(``attrs["vocabulary"]`` set for a non-MSP vocabulary): the inputs of the output tests of issue 22,
built without the corpus readers or the simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag.io import merge
from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary


def corpus_frames(voc: Vocabulary, n_speakers: int = 10, per_speaker: int = 12, systems=("alpha", "beta", "gamma"),
                  seed: int = 0, speakers: bool = True, gender: bool = True, probabilities: bool = False):
    """``(categorical, attributes, labels)``: merged frames of ``systems`` on a seeded corpus of
    ``n_speakers`` x ``per_speaker`` files in ``voc``'s layout (attributes None without any);
    each system is right with probability 0.45-0.75 and its attributes are the truth shrunk
    towards the middle plus noise, inside the scale."""
    rng = np.random.default_rng(seed)
    n = n_speakers * per_speaker
    k = len(voc.classes)
    files = [f"utt_{i:04d}.wav" for i in range(n)]
    speaker = np.repeat(np.arange(1, n_speakers + 1), per_speaker)
    truth = np.asarray(voc.classes, dtype=object)[np.arange(n) % k]
    rng.shuffle(truth)
    labels = pd.DataFrame({"FileName": files, "EmoClass": truth})
    for a in voc.attributes:
        middle, half = (a.low + a.high) / 2, (a.high - a.low) / 2
        labels[a.name] = np.clip(middle + half * rng.uniform(-1, 1, n), a.low, a.high).round(3)
    msp = voc == MSP_PODCAST
    if not speakers:
        labels["SpkrID"] = pd.array([pd.NA] * n, dtype="Int64" if msp else "str")
    elif msp:
        labels["SpkrID"] = pd.array(speaker, dtype="Int64")
    else:
        labels["SpkrID"] = pd.array([f"spk{s:02d}" for s in speaker], dtype="str")
    labels["Gender"] = (pd.array(np.where(speaker % 2 == 0, "Female", "Male"), dtype="str") if gender
                        else pd.array([pd.NA] * n, dtype="str"))
    labels["Split_Set"] = pd.array(["Test"] * n, dtype="str")
    labels.attrs.update(source="memory", split=None, synthetic=True)
    rows = []
    for j, system in enumerate(systems):
        right = rng.random(n) < 0.45 + 0.3 * j / max(1, len(systems) - 1)
        guess = np.asarray(voc.classes, dtype=object)[rng.integers(0, k, n)]
        frame = pd.DataFrame({"system": system, "FileName": files, "EmoClass": np.where(right, truth, guess)})
        if probabilities:
            p = rng.dirichlet(np.ones(k), n)
            for c, code in enumerate(voc.classes):
                frame[f"P_{code}"] = p[:, c]
        for a in voc.attributes:
            middle = (a.low + a.high) / 2
            value = middle + (0.4 + 0.2 * j) * (labels[a.name].to_numpy() - middle)
            frame[a.name] = np.clip(value + rng.normal(0, 0.1 * (a.high - a.low), n), a.low, a.high)
        rows.append(frame)
    predictions = pd.concat(rows, ignore_index=True)
    predictions.attrs.update(path="memory", synthetic=True)
    categorical = merge(labels, predictions, TASK_CATEGORICAL, vocabulary=voc)
    attributes = merge(labels, predictions, TASK_ATTRIBUTES, vocabulary=voc) if voc.attributes else None
    return categorical, attributes, labels
