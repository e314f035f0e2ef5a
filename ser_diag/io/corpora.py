"""Any emotion corpus: labels and predictions read with a :class:`~ser_diag.vocabulary.Vocabulary`.

Two routes lead into the same frames as MSP-Podcast's (:mod:`ser_diag.schema`): a plain CSV
route (labels and prediction CSVs whose columns a vocabulary names) and an audformat database
(:mod:`ser_diag.io.audformat_db`). Both rename the corpus' columns to the internal ones
(``FileName``, ``EmoClass``, ``SpkrID``, ``Gender``, ``Split_Set``; attributes keep the
vocabulary's names), keep the corpus' own class codes, and merge each task with
:func:`ser_diag.io.merge` under the vocabulary.
"""

from __future__ import annotations

import os
from pathlib import Path

from ser_diag.vocabulary import Vocabulary

__all__ = ["is_audformat", "load_corpus"]


def is_audformat(path: str | os.PathLike) -> bool:
    """``path`` is an audformat database: a folder holding ``db.yaml``, or that file."""
    path = Path(path)
    return (path.is_dir() and (path / "db.yaml").is_file()) or (path.name == "db.yaml" and path.is_file())


def load_corpus(labels_path, predictions_path, split: str | None = None, intersection: bool = False,
                vocabulary: Vocabulary | None = None, target: str | None = None,
                attributes=None) -> dict:
    """``dict(categorical=merged or None, attributes=merged or None, labels=labels,
    vocabulary=vocabulary)`` of a corpus (see the module docstring)."""
    raise NotImplementedError("the corpus route is being built (issue 22)")
