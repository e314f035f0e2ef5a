"""A seeded synthetic corpus in any preset vocabulary (:func:`simulate_corpus`), written twice:
as an audformat database and as plain CSVs with a vocabulary file, so both corpus routes
(:mod:`ser_diag.io.corpora`, :mod:`ser_diag.io.audformat_db`) run without the real data.

The model, small on purpose (10 speakers x 40 files in well under a second):

* speakers: the preset's count (IEMOCAP and EmoDB 10, CREMA-D 91, MSP-Podcast 50) or
  ``n_speakers``, gender alternating, ``files_per_speaker`` utterances each; IEMOCAP's
  speakers sit two per session (``Ses01F``, ``Ses01M``, ...), MSP-Podcast's files all in the
  Development split;
* labels: a class mix over the vocabulary's label codes (IEMOCAP: excluded codes such as
  ``frustrated`` and the merged ``excited`` included), attributes on the vocabulary's scale
  from each class' profile plus a per-speaker offset, in half steps;
* systems (``n_systems``, skill rising from the first): class logits
  ``skill * onehot(true class) + noise``, the noise sd ``exp(speaker_effect * d_s)`` for a
  speaker difficulty ``d_s ~ N(0, 1)`` (the planted speaker effect, shared by every system);
  attributes ``mean + shrinkage * (true - mean) + error`` with a per-speaker bias; the first
  system's attributes are not clipped and two of them are set outside the scale (model
  output, scored as given and warned about).

Layout written (all or nothing)::

    out/SYNTHETIC_DEMO.txt, out/simulation_truth.json
    out/audformat/db.yaml (+ tables; no audio)    out/audformat_predictions/<system>/*.csv
    out/csv/labels.csv, out/csv/vocabulary.json   out/csv/predictions/<system>/*.csv

Prediction files use the corpus' own names: ``file``, ``emotion`` (+ ``P_<code>``), one column
per attribute scheme on the audformat side; the vocabulary's columns on the CSV side.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.outputs import staged_output
from ser_diag.precision import PREDICTION_FLOAT_FORMAT
from ser_diag.schema import SYNTHETIC_BANNER
from ser_diag.vocabulary import Vocabulary, preset

__all__ = ["simulate_corpus", "CORPORA", "DEFAULT_SPEAKERS"]

#: The corpora :func:`simulate_corpus` writes (preset names).
CORPORA = ("iemocap", "crema-d", "emodb", "msp-podcast")
DEFAULT_SPEAKERS = {"iemocap": 10, "crema-d": 91, "emodb": 10, "msp-podcast": 50}
_EMODB_SPEAKERS = (("03", "Male"), ("08", "Female"), ("09", "Female"), ("10", "Male"), ("11", "Male"),
                   ("12", "Male"), ("13", "Female"), ("14", "Female"), ("15", "Male"), ("16", "Female"))
#: Arousal, valence, dominance of each class word, in units of half the scale's half-range.
_PROFILES = {
    "anger": (0.8, -0.6, 0.6), "angry": (0.8, -0.6, 0.6), "A": (0.8, -0.6, 0.6),
    "happy": (0.6, 0.7, 0.4), "happiness": (0.6, 0.7, 0.4), "H": (0.6, 0.7, 0.4), "excited": (0.8, 0.6, 0.4),
    "sad": (-0.6, -0.6, -0.5), "sadness": (-0.6, -0.6, -0.5), "S": (-0.6, -0.6, -0.5),
    "fear": (0.5, -0.6, -0.5), "fearful": (0.5, -0.6, -0.5), "F": (0.5, -0.6, -0.5),
    "disgust": (0.2, -0.6, 0.2), "disgusted": (0.2, -0.6, 0.2), "D": (0.2, -0.6, 0.2),
    "surprised": (0.6, 0.2, 0.0), "U": (0.6, 0.2, 0.0), "contempt": (0.0, -0.4, 0.4), "C": (0.0, -0.4, 0.4),
    "boredom": (-0.6, -0.2, -0.2), "frustrated": (0.3, -0.5, 0.1),
}
#: Attribute schemes of the audformat side, by position (the issue's canonical names).
_SCHEMES = ("arousal", "valence", "dominance")


def _speakers(voc: Vocabulary, corpus: str, n: int) -> pd.DataFrame:
    """Speaker id, gender and split (IEMOCAP: the session) of ``n`` speakers."""
    rows = []
    for i in range(n):
        gender = "Female" if i % 2 == 0 else "Male"
        split = None
        if corpus == "iemocap":
            session = (i // 2) % len(voc.splits) + 1
            speaker, split = f"Ses{session:02d}{gender[0]}{'' if i < 10 else i // 10}", f"Session{session}"
        elif corpus == "emodb" and n <= len(_EMODB_SPEAKERS):
            speaker, gender = _EMODB_SPEAKERS[i]
        elif corpus == "crema-d":
            speaker = str(1001 + i)
        elif corpus == "msp-podcast":
            speaker, split = str(i + 1), "Development"
        else:
            speaker = f"spk{i + 1:02d}"
        rows.append((speaker, gender, split))
    return pd.DataFrame(rows, columns=["speaker", "gender", "split"])


def _class_mix(voc: Vocabulary) -> np.ndarray:
    """Probability of each label code: the scored classes most, excluded and merged codes some."""
    weights = [1.0] * len(voc.classes) + [0.25] * len(voc.excluded) + [0.6] * len(voc.merged)
    return np.asarray(weights) / np.sum(weights)


def _labels(rng, voc: Vocabulary, corpus: str, speakers: pd.DataFrame, per_speaker: int) -> pd.DataFrame:
    n_spk = len(speakers)
    spk = np.repeat(np.arange(n_spk), per_speaker)
    codes = np.asarray(voc.label_codes)[rng.choice(len(voc.label_codes), size=len(spk), p=_class_mix(voc))]
    k = np.tile(np.arange(per_speaker), n_spk)
    ids = speakers["speaker"].to_numpy()[spk]
    pattern = {"iemocap": "{s}_{j:03d}.wav", "emodb": "wav/{s}a{j:03d}.wav", "crema-d": "AudioWAV/{s}_{j:03d}.wav",
               "msp-podcast": "MSP-PODCAST_{s:0>4}_{j:04d}.wav"}[corpus]
    names = [pattern.format(s=s, j=j) for s, j in zip(ids, k)]
    frame = pd.DataFrame({"file": names, "code": codes, "spk": spk, "speaker": ids,
                          "gender": speakers["gender"].to_numpy()[spk], "split": speakers["split"].to_numpy()[spk]})
    offsets = rng.normal(0.0, 0.25, size=(n_spk, 3))
    for i, a in enumerate(voc.attributes):
        mid, half = (a.low + a.high) / 2, (a.high - a.low) / 2
        profile = np.array([_PROFILES.get(c, (0.0, 0.0, 0.0))[i] for c in codes])
        value = mid + half * (0.6 * profile + offsets[spk, i] + rng.normal(0.0, 0.25, size=len(spk)))
        frame[a.name] = np.clip(np.round(value * 2) / 2, a.low, a.high)
    return frame


def _systems(rng, voc: Vocabulary, labels: pd.DataFrame, n_systems: int, speaker_effect: float) -> tuple[dict, dict]:
    """Each system's categorical and attribute predictions (internal names) and the truth planted."""
    n, n_spk = len(labels), int(labels["spk"].max()) + 1
    difficulty = rng.normal(0.0, 1.0, size=n_spk)
    noise_sd = np.exp(speaker_effect * difficulty)[labels["spk"].to_numpy()]
    resolved = [voc.resolve(c) for c in labels["code"]]
    true_index = np.array([voc.classes.index(c) if c is not None else rng.integers(len(voc.classes))
                           for c in resolved])
    skills = np.linspace(0.8, 1.8, n_systems) if n_systems > 1 else np.array([1.3])
    shrink = np.linspace(0.55, 0.85, n_systems) if n_systems > 1 else np.array([0.7])
    systems = {}
    for k in range(n_systems):
        name = f"sys{k + 1}" if k else "baseline"
        logits = skills[k] * np.eye(len(voc.classes))[true_index] + rng.normal(size=(n, len(voc.classes))) * noise_sd[:, None]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        frame = pd.DataFrame({"FileName": labels["file"], "EmoClass": np.asarray(voc.classes)[probs.argmax(axis=1)]})
        for j, code in enumerate(voc.classes):
            frame[f"P_{code}"] = probs[:, j]
        bias = rng.normal(0.0, 0.3, size=(n_spk, 3))
        for i, a in enumerate(voc.attributes):
            truth = labels[a.name].to_numpy()
            mean, half = truth.mean(), (a.high - a.low) / 2
            error_sd = half * max(0.3 - 0.1 * k / max(n_systems - 1, 1), 0.1)
            error = (rng.normal(0.0, error_sd, size=n) * np.sqrt(noise_sd)
                     + half * 0.15 * bias[labels["spk"], i])
            value = mean + shrink[k] * (truth - mean) + error
            if k == 0:   # model output outside the scale: scored as given, warned about
                value[:2] = (a.high + 0.4, a.low - 0.3)
            else:
                value = np.clip(value, a.low, a.high)
            frame[a.name] = value
        systems[name] = frame
    truth = {"speaker_difficulty": dict(zip(labels.drop_duplicates("spk")["speaker"], difficulty.round(6).tolist())),
             "speaker_effect": speaker_effect, "skills": dict(zip(systems, skills.round(6).tolist())),
             "shrinkage": dict(zip(systems, shrink.round(6).tolist())),
             "outside_scale": {"baseline": 2 * len(voc.attributes)} if voc.attributes else {}}
    return systems, truth


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format=PREDICTION_FLOAT_FORMAT, lineterminator="\n")


def _write_predictions(folder: Path, systems: dict, voc: Vocabulary, class_column: str, file_column: str,
                       attribute_names) -> None:
    for name, frame in systems.items():
        categorical = frame[["FileName", "EmoClass", *voc.prob_columns]].rename(
            columns={"FileName": file_column, "EmoClass": class_column})
        _write_csv(categorical, folder / name / "categorical.csv")
        if voc.attributes:
            attributes = frame[["FileName", *voc.attribute_names]].rename(
                columns={"FileName": file_column, **dict(zip(voc.attribute_names, attribute_names))})
            _write_csv(attributes, folder / name / "attributes.csv")


def _write_csv_corpus(folder: Path, voc: Vocabulary, labels: pd.DataFrame, systems: dict) -> None:
    columns = {voc.file_column: labels["file"], voc.class_column: labels["code"]}
    columns.update({a: labels[a] for a in voc.attribute_names})
    columns[voc.speaker_column] = labels["speaker"]
    columns[voc.gender_column] = labels["gender"]
    if voc.split_column and labels["split"].notna().all():
        columns[voc.split_column] = labels["split"]
    _write_csv(pd.DataFrame(columns), folder / "labels.csv")
    (folder / "vocabulary.json").write_text(json.dumps(voc.to_dict(), indent=2) + "\n", encoding="utf-8")
    _write_predictions(folder / "predictions", systems, voc, voc.class_column, voc.file_column, voc.attribute_names)


def _write_audformat(folder: Path, voc: Vocabulary, labels: pd.DataFrame, corpus: str) -> None:
    """The labels as an audformat database (no audio): schemes emotion, the attributes and
    speaker (its label dictionary holds each speaker's gender); one table per split."""
    import audformat

    db = audformat.Database(corpus, source="synthetic: ser_diag.simulate.simulate_corpus", usage="unrestricted",
                            description=SYNTHETIC_BANNER)
    db.schemes["emotion"] = audformat.Scheme(labels=list(voc.label_codes), description=f"vocabulary {voc.name}")
    for scheme, a in zip(_SCHEMES, voc.attributes):
        db.schemes[scheme] = audformat.Scheme("float", minimum=a.low, maximum=a.high, description=a.display)
    speakers = labels.drop_duplicates("speaker")
    db.schemes["speaker"] = audformat.Scheme(labels={s: {"gender": g.lower()} for s, g in
                                                     zip(speakers["speaker"], speakers["gender"])})
    db["files"] = audformat.Table(audformat.filewise_index(labels["file"].tolist()))
    db["files"]["speaker"] = audformat.Column(scheme_id="speaker")
    db["files"]["speaker"].set(labels["speaker"].tolist())
    splits = [s for s in pd.unique(labels["split"]) if s is not None] if labels["split"].notna().all() else []
    for split in splits:
        db.splits[split] = audformat.Split("test" if split == "Development" else "other")
    for split in splits or [None]:
        rows = labels if split is None else labels.loc[labels["split"] == split]
        table_id = "emotion" if split is None else f"emotion.{split}"
        db[table_id] = audformat.Table(audformat.filewise_index(rows["file"].tolist()), split_id=split)
        db[table_id]["emotion"] = audformat.Column(scheme_id="emotion")
        db[table_id]["emotion"].set(rows["code"].tolist())
        for scheme, a in zip(_SCHEMES, voc.attributes):
            db[table_id][scheme] = audformat.Column(scheme_id=scheme)
            db[table_id][scheme].set(rows[a.name].to_numpy(dtype=float))
    with warnings.catch_warnings():   # the library's own deprecation notices
        warnings.simplefilter("ignore")
        db.save(str(folder), storage_format="csv")


def simulate_corpus(out: str | os.PathLike, corpus: str = "iemocap", seed: int = 0, n_speakers: int | None = None,
                    n_systems: int = 3, files_per_speaker: int = 40, speaker_effect: float = 0.5) -> Path:
    """Write a seeded synthetic ``corpus`` (one of :data:`CORPORA`) into ``out`` (all or nothing;
    see the module docstring for the model and the layout). Returns ``out``."""
    name = str(corpus).strip().lower().replace("_", "-")
    if name not in CORPORA:
        raise ValueError(f"corpus must be one of {', '.join(CORPORA)}, not {corpus!r}")
    n_speakers = DEFAULT_SPEAKERS[name] if n_speakers is None else int(n_speakers)
    if n_speakers < 2 or n_systems < 1 or files_per_speaker < 2:
        raise ValueError("at least 2 speakers, 1 system and 2 files per speaker")
    voc = preset(name)
    rng = np.random.default_rng(seed)
    speakers = _speakers(voc, name, n_speakers)
    labels = _labels(rng, voc, name, speakers, files_per_speaker)
    systems, truth = _systems(rng, voc, labels, n_systems, speaker_effect)
    with staged_output(out) as stage:
        stage = Path(stage)
        (stage / "SYNTHETIC_DEMO.txt").write_text(
            f"{SYNTHETIC_BANNER}\n\nWritten by ser_diag.simulate.simulate_corpus: corpus {name}, seed {seed}, "
            f"{n_speakers} speakers, {n_systems} systems.\n", encoding="utf-8")
        audformat_names = {"file_column": "file", "class_column": "emotion",
                           "attribute_names": _SCHEMES[:len(voc.attributes)]}
        _write_audformat(stage / "audformat", voc, labels, name)
        _write_predictions(stage / "audformat_predictions", systems, voc, **audformat_names)
        _write_csv_corpus(stage / "csv", voc, labels, systems)
        summary = {"corpus": name, "vocabulary": voc.name, "seed": seed, "n_speakers": n_speakers,
                   "files_per_speaker": files_per_speaker, "n_files": len(labels), "systems": list(systems),
                   "synthetic": True, **truth}
        (stage / "simulation_truth.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return Path(out)
