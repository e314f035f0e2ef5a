"""Small in-memory corpora of any vocabulary, merged as :func:`ser_diag.io.merge` merges them
(``attrs["vocabulary"]`` set for a non-MSP vocabulary): the inputs of the output tests of issue 22,
built without the corpus readers or the simulator."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ser_diag.io import merge
from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary


def corpus_frames(voc: Vocabulary, n_speakers: int = 10, per_speaker: int = 12, systems=("alpha", "beta", "gamma"),
                  seed: int = 0, speakers: bool = True, gender: bool = True, probabilities: bool = False,
                  classes=None, split: str | None = "Test"):
    """``(categorical, attributes, labels)``: merged frames of ``systems`` on a seeded corpus of
    ``n_speakers`` x ``per_speaker`` files in ``voc``'s layout (attributes None without any);
    each system is right with probability 0.45-0.75 and its attributes are the truth shrunk
    towards the middle plus noise, inside the scale. ``classes``: the codes the truth and the
    predictions use (default: all of ``voc``'s); ``split``: every file's ``Split_Set`` (None: none named)."""
    rng = np.random.default_rng(seed)
    n = n_speakers * per_speaker
    codes = np.asarray(voc.classes if classes is None else classes, dtype=object)
    k = len(codes)
    files = [f"utt_{i:04d}.wav" for i in range(n)]
    speaker = np.repeat(np.arange(1, n_speakers + 1), per_speaker)
    truth = codes[np.arange(n) % k]
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
    labels["Split_Set"] = pd.array([split] * n, dtype="str")
    labels.attrs.update(source="memory", split=None, synthetic=True)
    rows = []
    for j, system in enumerate(systems):
        right = rng.random(n) < 0.45 + 0.3 * j / max(1, len(systems) - 1)
        guess = codes[rng.integers(0, k, n)]
        frame = pd.DataFrame({"system": system, "FileName": files, "EmoClass": np.where(right, truth, guess)})
        if probabilities:
            p = rng.dirichlet(np.ones(len(voc.classes)), n)
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


# --------------------------------------------------------------------------- translated diagnostics

_LEVELS = ("bin_low", "bin_high", "mean_true", "mean_pred", "mean_pred_ci_low", "mean_pred_ci_high")
_DIFFERENCES = ("bias", "bias_ci_low", "bias_ci_high", "mae")
_CODE_COLUMNS = ("true", "pred", "class")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class _Translation:
    """MSP-Podcast's first ``k`` codes and its attributes read as ``voc``'s classes and attributes
    (a bijection; attribute values mapped affinely from 1-7 onto each attribute's scale)."""

    def __init__(self, voc: Vocabulary):
        self.voc = voc
        self.codes = dict(zip(MSP_PODCAST.classes, voc.classes))
        self.attributes = dict(zip(MSP_PODCAST.attribute_names, voc.attributes))

    def value(self, attribute: str, x):
        a = self.attributes[attribute]
        return a.low + (np.asarray(x, dtype=float) - 1.0) * (a.high - a.low) / 6.0

    def scale(self, attribute: str) -> float:
        a = self.attributes[attribute]
        return (a.high - a.low) / 6.0

    def label(self, attribute: str, text: str) -> str:
        return _NUMBER.sub(lambda m: f"{float(self.value(attribute, float(m.group()))):g}", str(text))

    def metric(self, name: str) -> str | None:
        """A metric name in ``voc``'s names; None for one of a code ``voc`` does not have."""
        for old, new in self.attributes.items():
            if name.endswith("_" + old):
                return name[:-len(old)] + new.name
        head, _, tail = name.rpartition("_")
        if head and tail in MSP_PODCAST.classes:
            return f"{head}_{self.codes[tail]}" if tail in self.codes else None
        return name

    def speaker(self, values: pd.Series) -> pd.Series:
        return pd.Series(pd.array([None if pd.isna(v) else f"spk{int(v):02d}" for v in values], dtype="str"),
                         index=values.index)

    def table(self, table: pd.DataFrame) -> pd.DataFrame:
        out = table.copy()
        keep = np.ones(len(out), dtype=bool)
        for column in _CODE_COLUMNS:
            if column in out.columns and out[column].dtype.kind in "OUT" or column in out.columns and \
                    str(out[column].dtype) in ("str", "string"):
                values = out[column].astype(object)
                known = values.isin(list(MSP_PODCAST.classes))
                keep &= ~(known & ~values.isin(list(self.codes))).to_numpy()
                out[column] = values.map(lambda v: self.codes.get(v, v))
        if "metric" in out.columns:
            renamed = out["metric"].astype(object).map(self.metric)
            keep &= renamed.notna().to_numpy()
            out["metric"] = renamed
        if "attribute" in out.columns:
            attributes = out["attribute"].astype(object)
            for column in _LEVELS + _DIFFERENCES + ("true_bin", "pred_bin"):
                if column not in out.columns:
                    continue
                values = out[column].astype(object).to_numpy().copy()
                for old in self.attributes:
                    rows = (attributes == old).to_numpy()
                    if column in _LEVELS:
                        values[rows] = self.value(old, values[rows].astype(float))
                    elif column in _DIFFERENCES:
                        values[rows] = values[rows].astype(float) * self.scale(old)
                    else:
                        values[rows] = [self.label(old, v) for v in values[rows]]
                out[column] = values.astype(float) if column in _LEVELS + _DIFFERENCES else values
            out["attribute"] = attributes.map(lambda a: self.attributes[a].name if a in self.attributes else a)
        if "SpkrID" in out.columns:
            out["SpkrID"] = self.speaker(out["SpkrID"])
        out = out.loc[keep].reset_index(drop=True)
        out.attrs = {k: v for k, v in table.attrs.items()}
        out.attrs["vocabulary"] = self.voc
        return out

    def frame(self, merged: pd.DataFrame | None) -> pd.DataFrame | None:
        if merged is None:
            return None
        out = merged.copy()
        for column in ("EmoClass_true", "EmoClass_pred", "EmoClass"):
            if column in out.columns:
                out[column] = pd.array(out[column].astype(object).map(self.codes.get), dtype="str")
        for old, new in self.attributes.items():
            for suffix in ("_true", "_pred", ""):
                if old + suffix in out.columns:
                    out[new.name + suffix] = self.value(old, out.pop(old + suffix))
        out = out[[c for c in out.columns if not c.startswith("P_")]]
        if "SpkrID" in out.columns:
            out["SpkrID"] = self.speaker(out["SpkrID"])
        out.attrs = dict(merged.attrs, vocabulary=self.voc)
        return out


def translated_diagnostics(voc: Vocabulary, n_boot: int = 20, **corpus):
    """A :class:`~ser_diag.diagnostics.Diagnostics` of a small corpus in ``voc``'s names, made
    without the analyses reading the vocabulary: :func:`~ser_diag.diagnostics.diagnose` runs on
    an MSP-Podcast corpus that uses only its first ``len(voc.classes)`` codes (and its
    attributes when ``voc`` has them), and every table, merged frame and the evaluation JSON
    are translated into ``voc``'s codes, attributes and scales (a bijection: the numbers stay
    those of the corpus they now describe). ``corpus``: :func:`corpus_frames`' options."""
    from ser_diag.diagnostics import Diagnostics, diagnose, dropped_sections
    from ser_diag.evaluate import evaluate_merged
    from ser_diag.evaluation import Evaluation
    from ser_diag.resampling import Resampling

    k = len(voc.classes)
    if k > len(MSP_PODCAST.classes) or len(voc.attributes) not in (0, len(MSP_PODCAST.attributes)):
        raise ValueError("translated_diagnostics needs at most 8 classes and 0 or 3 attributes")
    proxy = Vocabulary("proxy", classes=MSP_PODCAST.classes[:max(k, 2)])
    categorical, attributes, labels = corpus_frames(MSP_PODCAST, classes=proxy.classes, **corpus)
    if not voc.attributes:
        attributes = None
    msp = diagnose(categorical, attributes, labels, resampling=Resampling(n_boot=n_boot), workers=1)
    t = _Translation(voc)
    data = Evaluation.from_frames(t.frame(msp.categorical), t.frame(msp.attributes), t.frame(msp.labels),
                                  vocabulary=voc)
    tables = {name: t.table(table) for name, table in msp.tables.items()}
    metrics = tables["metrics"]
    scores = tuple(None if not (metrics["task"] == task).any() else
                   metrics[metrics["task"] == task].drop(columns="task").reset_index(drop=True)
                   for task in (TASK_CATEGORICAL, TASK_ATTRIBUTES))
    evaluation = evaluate_merged(data.categorical, data.attributes, Resampling(n_boot=n_boot),
                                 scores=scores, split=msp.settings["split"])
    settings = dict(msp.settings)
    settings["notes"] = dropped_sections(data) + msp.settings["notes"][len(dropped_sections(msp.data)):]
    return Diagnostics(data, settings, evaluation, tables)
