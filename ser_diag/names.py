"""Names and numbers as a person reads them: one place for every view, table header and axis.

Machine names (``ccc_EmoAct``, ``binned_EmoVal``, ``recall_F``) stay in CSV columns and JSON;
everything meant for people goes through :func:`human_name` and :func:`format_p`.
"""

from __future__ import annotations

import math
import re

from ser_diag.schema import ATTRIBUTE_NAMES, CLASS_NAMES
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

_METRICS = {
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "accuracy": "accuracy",
    "uar": "UAR",
    "ccc_mean": "mean CCC",
    "ccc": "CCC",
    "pearson": "Pearson r",
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "bias": "bias",
    "mae": "MAE",
    "rmse": "RMSE",
    "binned": "binned",
    "slope": "shrinkage slope",
    "sd_ratio": "SD ratio",
    "variance_ratio": "SD ratio (pred / true)",
    "rho": "Pearson r",
    "scale_v": "scale v",
    "location_u": "location u",
    "c_b": "bias correction C_b",
    "n": "n",
}
_PREFIXED = re.compile(r"^(?P<head>[a-z0-9_]+?)_(?P<tail>Emo(?:Act|Val|Dom)|[A-Z])$")
_HEAD = re.compile(r"^[a-z0-9_]+$")


def human_name(name: str, vocabulary: Vocabulary | None = None) -> str:
    """The reader's name of a metric, view or column; unknown names come back unchanged.
    ``vocabulary``: the corpus whose class codes and attribute names the name may end in
    (default MSP-Podcast's: ``EmoAct`` reads ``arousal``, ``F`` reads ``Fear``).

    >>> [human_name(n) for n in ("ccc_EmoAct", "binned_EmoVal", "recall_F", "macro_f1", "EmoDom")]
    ['CCC arousal', 'binned valence', 'recall Fear', 'macro-F1', 'dominance']
    >>> human_name("system")
    'system'
    >>> from ser_diag.vocabulary import IEMOCAP
    >>> [human_name(n, IEMOCAP) for n in ("ccc_activation", "f1_happy", "binned_valence", "activation")]
    ['CCC arousal', 'F1 Happiness', 'binned valence', 'arousal']
    """
    name = str(name)
    if name in _METRICS:
        return _METRICS[name]
    if vocabulary is not None and vocabulary != MSP_PODCAST:
        return _vocabulary_name(name, vocabulary)
    if name in ATTRIBUTE_NAMES:
        return ATTRIBUTE_NAMES[name]
    match = _PREFIXED.match(name)
    if match:
        head, tail = match["head"], match["tail"]
        tail_name = ATTRIBUTE_NAMES.get(tail) or CLASS_NAMES.get(tail)
        if tail_name is not None:
            return f"{_METRICS.get(head, head.replace('_', ' '))} {tail_name}"
    return name


def _vocabulary_name(name: str, vocabulary: Vocabulary) -> str:
    """:func:`human_name` by the names of a corpus other than MSP-Podcast: ``<metric>_<code or
    attribute>`` (the longest code or attribute the name ends in)."""
    displays = {**vocabulary.class_names, **vocabulary.attribute_displays}
    if name in vocabulary.attribute_displays:
        return vocabulary.attribute_displays[name]
    for tail in sorted(displays, key=len, reverse=True):
        head = name[:-len(tail) - 1]
        if name.endswith("_" + tail) and head and _HEAD.match(head):
            return f"{_METRICS.get(head, head.replace('_', ' '))} {displays[tail]}"
    return name


def format_p(p, prefix: bool = False) -> str:
    """A p-value in the one format used everywhere people read it.

    Three decimals, and ``< 0.001`` below that (a permutation test with 999 or more
    permutations reaches its floor 1/(B+1) there); empty for a missing value.

    >>> [format_p(x) for x in (0.000999, 0.6057, 0.04, float("nan"))]
    ['< 0.001', '0.606', '0.040', '']
    >>> format_p(0.0004, prefix=True)
    'p < 0.001'
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    from ser_diag.precision import round_significant

    p = round_significant(float(p))  # the p-value of the tables, not the bits beneath it
    if math.isnan(p):
        return ""
    text = "< 0.001" if p < 0.001 else f"{p:.3f}"
    if not prefix:
        return text
    return f"p {text}" if text.startswith("<") else f"p = {text}"
