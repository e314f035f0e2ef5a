"""Every beyond-the-leaderboard table in one call: leaderboard ranks
(:mod:`ser_diag.analysis.ranks`), annotator agreement and the human ceiling
(:mod:`ser_diag.analysis.agreement`), podcasts and durations (:mod:`ser_diag.analysis.where`),
with the detailed labels and ``Audios/`` found next to the consensus labels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ser_diag.analysis.agreement import agreement_tables
from ser_diag.analysis.ranks import headline_metrics, rank_tables, resampling_settings
from ser_diag.analysis.where import where_tables
from ser_diag.evaluation import aligned, vocabulary_of
from ser_diag.schema import ATTRIBUTES
from ser_diag.memory import release_free_memory
from ser_diag.vocabulary import MSP_PODCAST

__all__ = ["beyond_tables", "corpus_extras"]


def corpus_extras(labels: pd.DataFrame) -> tuple[pd.DataFrame | None, Path | None, list[str]]:
    """``(detailed labels or None, Audios folder or None, notes)`` found next to the consensus
    labels (``labels.attrs["source"]``: ``<root>/Labels/labels_consensus.csv``, so
    ``<root>/Labels/labels_detailed.csv`` and ``<root>/Audios``)."""
    from ser_diag.io import LABELS_DETAILED, read_detailed_labels

    source = labels.attrs.get("source")
    notes = []
    if not source:
        return None, None, ["labels have no source path: annotator agreement and durations skipped"]
    labels_dir = Path(source).parent
    root = labels_dir.parent if labels_dir.name == LABELS_DETAILED.parent.name else labels_dir
    detailed_file = next((p for p in (root / LABELS_DETAILED, labels_dir / LABELS_DETAILED.name) if p.is_file()), None)
    detailed = read_detailed_labels(detailed_file) if detailed_file is not None else None
    if detailed is None:
        notes.append(f"no {LABELS_DETAILED} next to the labels: annotator agreement, human ceiling and "
                     "soft-label scores skipped")
    audio = root / "Audios"
    if not audio.is_dir():
        notes.append("no Audios/ folder next to the labels: duration bins skipped")
    return detailed, (audio if audio.is_dir() else None), notes


def _leaders(merged: pd.DataFrame | None, board: pd.DataFrame, max_systems: int, notes: list) -> pd.DataFrame | None:
    """The rows of ``merged`` of its task's ``max_systems`` best systems (headline metric rank)."""
    if merged is None:
        return None
    merged = aligned(merged)
    if len(merged.systems) <= max_systems:
        return merged
    task = merged.task
    metric = headline_metrics(task, merged.vocabulary)[-1]   # macro_f1; ccc_mean
    ranked = board[(board["task"] == task) & (board["metric"] == metric)].sort_values(["rank", "system"], kind="stable")
    keep = ranked["system"].head(max_systems).tolist()
    notes.append(f"{task}: agreement, soft-label, podcast and duration tables show the {max_systems} best of "
                 f"{len(merged.systems)} systems by {metric} (max_systems)")
    frame = merged.frame
    subset = frame[frame["system"].isin(keep)].reset_index(drop=True)
    subset.attrs = dict(frame.attrs)
    return aligned(subset, task)


def beyond_tables(categorical: pd.DataFrame | None, attributes: pd.DataFrame | None, labels: pd.DataFrame | None,
                  detailed="auto", audio_root="auto", resampling=None, min_podcast_files: int = 50,
                  max_systems: int | None = 20, distributions: dict | None = None,
                  **legacy) -> dict[str, pd.DataFrame]:
    """Every beyond-the-leaderboard table: ``leaderboard_ranks``, ``leaderboard_pairs``
    (:func:`rank_tables`); ``annotator_agreement``, ``annotator_agreement_bins``,
    ``annotator_agreement_soft``, ``human_ceiling``
    (:func:`ser_diag.analysis.agreement.agreement_tables`, with detailed labels);
    ``podcast_metrics``, ``worst_podcasts``, ``gender_gap_by_podcast``, ``duration_metrics``
    (:func:`ser_diag.analysis.where.where_tables`); and ``beyond_notes`` (``topic, note``: what
    was skipped and why). ``detailed`` / ``audio_root`` = ``"auto"``: found next to the labels
    (:func:`corpus_extras`); None: skipped. The leaderboard tables hold every system; the
    per-group tables (agreement, soft labels, podcasts, durations) the ``max_systems`` best of
    each task by its headline metric (None: all), since their size and cost grow with systems x
    groups (at 166 systems x 150 podcasts, 100k rows); a note says when systems were left out.
    ``distributions``: ``{task: ...}`` resamples of the metrics table to reuse for the ranks
    (:func:`ser_diag.analysis.ranks.leaderboard_ranks`).
    """
    settings = resampling_settings(resampling, **legacy)
    notes = []
    voc = next((vocabulary_of(m) for m in (categorical, attributes) if m is not None), MSP_PODCAST)
    if voc != MSP_PODCAST and detailed is not None:
        detailed = None              # per-annotator labels are MSP-Podcast's labels_detailed.csv
        notes.append(f"{voc.name}: annotator agreement, human ceiling and soft-label scores read MSP-Podcast's "
                     "per-annotator labels (labels_detailed.csv): skipped")
    if labels is None or labels.empty:
        labels = pd.DataFrame(columns=["FileName", "EmoClass", "SpkrID"])
        detailed = None
        audio_root = None if isinstance(audio_root, str) else audio_root
        if not notes:           # a corpus other than MSP-Podcast's said why already
            notes.append("no consensus labels given: annotator agreement and human ceiling skipped")
    elif isinstance(detailed, str) or isinstance(audio_root, str):
        found_detailed, found_audio, found_notes = corpus_extras(labels)
        if isinstance(detailed, str):
            detailed = found_detailed
            notes += [n for n in found_notes if "agreement" in n]
        del found_detailed
        if isinstance(audio_root, str):
            audio_root = found_audio
            notes += [n for n in found_notes if "duration" in n]
    if detailed is None and not any("agreement" in n for n in notes):
        notes.append("no detailed labels given: annotator agreement, human ceiling and soft-label scores skipped")
    tables = rank_tables(categorical, attributes, resampling=settings, distributions=distributions)
    if max_systems is not None:
        board = tables["leaderboard_ranks"]
        categorical, attributes = (_leaders(m, board, max_systems, notes) for m in (categorical, attributes))
    if detailed is not None:   # what the agreement tables read: not the worker ids and secondary labels
        detailed = detailed.loc[:, ["FileName", "EmoClass", *ATTRIBUTES]]
        release_free_memory()
    tables.update(agreement_tables(categorical, attributes, labels, detailed, resampling=settings, vocabulary=voc))
    if detailed is not None:   # 2.6M judgements hold ~0.5 GB: not needed past here
        detailed = None
        release_free_memory()
    tables.update(where_tables(categorical, attributes, audio_root=audio_root, resampling=settings,
                               min_podcast_files=min_podcast_files))
    if "podcast_metrics" not in tables and voc != MSP_PODCAST:
        notes.append(f"{voc.name}: per-podcast metrics need MSP-Podcast file names "
                     "(MSP-PODCAST_<podcast>_<segment>.wav): skipped")
    elif "podcast_metrics" not in tables:
        notes.append("no file name carries a podcast (MSP-PODCAST_<podcast>_<segment>.wav) with enough files: "
                     "per-podcast metrics skipped")
    if "gender_gap_by_podcast" not in tables and "podcast_metrics" in tables:
        notes.append("no podcast has files of both genders: the gender gap cannot be split into within and "
                     "between podcasts")
    tables["beyond_notes"] = pd.DataFrame({"topic": ["beyond"] * len(notes), "note": notes},
                                          columns=["topic", "note"])
    return tables
