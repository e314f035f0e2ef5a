"""``io.load``: the route a corpus takes into the merged frames.

MSP-Podcast labels and challenge prediction files take :func:`ser_diag.io.merge.load_podcast`
(the typed readers, line-exact errors); an audformat database (a folder holding ``db.yaml``)
or any other :class:`~ser_diag.vocabulary.Vocabulary` takes :func:`ser_diag.io.corpora.load_corpus`.
"""

from __future__ import annotations

import os

from ser_diag.io.corpora import is_audformat, load_corpus
from ser_diag.io.merge import load_podcast
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = ["load"]


def load(labels_path: str | os.PathLike, predictions_path: str | os.PathLike, split: str | None = "Development",
         intersection: bool = False, vocabulary: Vocabulary | None = None, **corpus) -> dict:
    """Read and validate labels and every system's predictions, and merge each task.

    Returns ``dict(categorical=merged or None, attributes=merged or None, labels=labels,
    vocabulary=vocabulary)`` (``None`` for a task no system submitted). Everything is
    validated before it returns, so a command can fail before writing any output. An
    audformat database or a ``vocabulary`` other than MSP-Podcast's takes the corpus route
    (``corpus``: its ``target``, ``attributes``); MSP-Podcast's layout the typed readers
    (:func:`~ser_diag.io.merge.load_podcast`, ``split`` default ``Development``).
    """
    if is_audformat(labels_path) or (vocabulary is not None and vocabulary != MSP_PODCAST):
        return load_corpus(labels_path, predictions_path, split=split, intersection=intersection,
                           vocabulary=vocabulary, **corpus)
    if corpus:
        raise TypeError(f"{', '.join(corpus)}: only for an audformat database or a corpus vocabulary")
    return load_podcast(labels_path, predictions_path, split=split, intersection=intersection)
