"""A small planted feature task for tests, examples and launch scripts (no corpus needed).

``make_task`` returns labels in the challenge layout and two feature stores: ``audio`` carries
arousal/dominance and some class cues, ``text`` carries valence and the class.
``make_corpus_task`` does the same for any :class:`~ser_diag.vocabulary.Vocabulary` (IEMOCAP-,
CREMA-D-like ...): the internal labels layout with the corpus' own codes, attributes on its
scales, string speaker ids and sessions (or speaker-disjoint Train/Development/Test). Running the module
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


def make_corpus_task(vocabulary, n_speakers: int = 10, n_sessions: int | None = None,
                     files_per_speaker: int = 24, seed: int = 0, unscored_share: float = 0.08):
    """A planted feature task for any corpus: ``(labels, {"audio": ArrayFeatures, "text":
    ArrayFeatures})``.

    ``labels``: the internal layout (``FileName``, ``EmoClass`` with ``vocabulary``'s codes --
    about ``unscored_share`` of the files carry its first excluded code when it has one --,
    one column per attribute on its scale, ``SpkrID`` (pandas ``"str"``, ``spk01`` ...),
    ``Gender`` (alternating Female/Male speakers), ``Split_Set``). ``n_sessions``: speakers
    in consecutive groups of ``n_speakers / n_sessions`` per session, ``Split_Set`` the
    session name (the vocabulary's splits when it has that many, else ``Session1`` ...), the
    layout of IEMOCAP's leave-one-session-out folds; ``None``: speaker-disjoint ``Train``
    (60 % of speakers), ``Development`` (20 %), ``Test``. The audio features carry the
    attributes and a few class cues, the text features the class.

    >>> from ser_diag.vocabulary import IEMOCAP
    >>> labels, feats = make_corpus_task(IEMOCAP, n_speakers=10, n_sessions=5, files_per_speaker=4)
    >>> labels.groupby("Split_Set")["SpkrID"].nunique().tolist(), sorted(feats)
    ([2, 2, 2, 2, 2], ['audio', 'text'])
    """
    from ser_diag.models.train import ArrayFeatures

    rng = np.random.default_rng(seed)
    classes = np.array(vocabulary.classes, dtype=object)
    k, n = len(classes), n_speakers * files_per_speaker
    speakers = np.repeat([f"spk{j + 1:02d}" for j in range(n_speakers)], files_per_speaker)
    speaker_no = np.repeat(np.arange(n_speakers), files_per_speaker)
    gender = np.where(speaker_no % 2 == 0, "Female", "Male")
    if n_sessions:
        if n_speakers % n_sessions:
            raise ValueError(f"{n_speakers} speakers do not split into {n_sessions} sessions")
        names = (list(vocabulary.splits) if len(vocabulary.splits) == n_sessions
                 else [f"Session{i + 1}" for i in range(n_sessions)])
        split = np.asarray(names, dtype=object)[speaker_no // (n_speakers // n_sessions)]
    else:
        share = speaker_no / n_speakers
        split = np.select([share < 0.6, share < 0.8], ["Train", "Development"], "Test").astype(object)
    cls = rng.integers(0, k, n)
    codes = classes[cls]
    if vocabulary.excluded:
        codes[rng.random(n) < unscored_share] = vocabulary.excluded[0]
    profile = np.random.default_rng([seed, 7]).uniform(-1, 1, (k, max(1, len(vocabulary.attributes))))
    labels = pd.DataFrame({"FileName": [f"{s}_{i % files_per_speaker:03d}.wav" for i, s in enumerate(speakers)],
                           "EmoClass": codes})
    scaled = []
    for j, a in enumerate(vocabulary.attributes):
        unit = np.clip(0.5 + 0.3 * profile[cls, j] + 0.12 * rng.standard_normal(n), 0, 1)
        scaled.append(unit)
        labels[a.name] = np.round(a.low + (a.high - a.low) * unit, 2)
    labels["SpkrID"] = pd.array(speakers, dtype="str")
    labels["Gender"] = pd.array(gender, dtype="str")
    labels["Split_Set"] = pd.array(split, dtype="str")
    one_hot = np.eye(k)[cls]
    cues = np.c_[np.asarray(scaled).T.reshape(n, -1), one_hot[:, : max(1, k // 2)]]
    audio = cues + 0.3 * rng.standard_normal(cues.shape)
    text = one_hot + 0.6 * rng.standard_normal((n, k))
    return labels, {"audio": ArrayFeatures(labels["FileName"], audio), "text": ArrayFeatures(labels["FileName"], text)}


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
