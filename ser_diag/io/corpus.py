"""Where things are in an MSP-Podcast-layout corpus folder: the label files, the synthetic
marker, transcripts and audio (see ``../shared/reference/msp_podcast_format.md``)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ser_diag.errors import InputError

#: Marker file that every synthetic data root carries.
SYNTHETIC_MARKER = "SYNTHETIC_DEMO.txt"
LABELS_CONSENSUS = Path("Labels") / "labels_consensus.csv"
LABELS_DETAILED = Path("Labels") / "labels_detailed.csv"


def _labels_file(path: str | os.PathLike, relative: Path) -> Path:
    """``path`` itself, or the label file ``relative`` (or its name) under the folder ``path``."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / relative, path / relative.name):
            if candidate.is_file():
                return candidate
        raise InputError(path / relative, None, "no such file (expected a corpus root or the CSV path)")
    return path


def is_synthetic(path: str | os.PathLike) -> bool:
    """True if ``SYNTHETIC_DEMO.txt`` is in ``path`` (a folder), its folder, or up to 4 parents."""
    path = Path(path).absolute()
    folder = path if path.is_dir() else path.parent
    return any((d / SYNTHETIC_MARKER).is_file() for d in [folder, *folder.parents[:4]])


def corpus_files(corpus: str | os.PathLike | None, file_names) -> pd.DataFrame:
    """Transcript text and audio path of each file of an MSP-Podcast-layout corpus.

    ``corpus``: the root holding ``Transcripts/<stem>.txt`` and ``Audios/<FileName>``. Returns
    one row per name in order, columns ``FileName``, ``transcript`` (stripped text, None when
    the file is missing) and ``audio`` (path as text, None when missing); a column is left out
    when the corpus has no such folder.
    """
    names = [str(n) for n in file_names]
    out = pd.DataFrame({"FileName": names})
    if corpus is None:
        return out
    root = Path(corpus)
    transcripts, audios = root / "Transcripts", root / "Audios"
    if transcripts.is_dir():
        def text(name):
            path = transcripts / f"{Path(name).stem}.txt"
            return path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else None
        out["transcript"] = [text(n) for n in names]
    if audios.is_dir():
        out["audio"] = [str(audios / n) if (audios / n).is_file() else None for n in names]
    return out


def detailed_labels_file(corpus: str | os.PathLike | None = None,
                         labels_source: str | os.PathLike | None = None) -> Path | None:
    """Where the annotators' votes are: ``<corpus>/Labels/labels_detailed.csv`` or
    ``labels_detailed.csv`` beside the consensus labels file; None when neither exists.
    Read it with :func:`~ser_diag.io.labels.read_detailed_labels` and
    :func:`~ser_diag.io.labels.soft_labels`."""
    candidates = []
    if corpus is not None:
        candidates.append(Path(corpus) / "Labels" / "labels_detailed.csv")
    if labels_source:
        candidates.append(Path(labels_source).parent / "labels_detailed.csv")
    return next((c for c in candidates if c.is_file()), None)
