"""The rows behind a selection: a cell's, an agreement bin's or a podcast's files, or where two
systems disagree, with the annotators' votes, transcripts and audio; CSV export.

:class:`Rows` binds one :class:`~ser_diag.explorer.state.ExplorerState` to the
:class:`~ser_diag.explorer.engine.Engine`: the cells a view offers (class codes, bin labels,
agreement bins, podcasts), their files (:meth:`Rows.cell_utterances`,
:meth:`Rows.group_utterances`, :meth:`Rows.disagreement_list`) and what the rows area shows
(:meth:`Rows.listing`, a :class:`Listing`: the files, or a message saying why there is nothing
to list). :func:`column_name` gives the headers a person reads; the CSV keeps machine names.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag import io
from ser_diag.analysis import binned
from ser_diag.analysis.agreement import SD_BINS
from ser_diag.explorer import views
from ser_diag.explorer.engine import VOTES_KEY, Engine
from ser_diag.explorer.state import GROUP_VIEWS, is_cell_view, ExplorerState, bin_index, choice, class_code, view_name
from ser_diag.names import human_name
from ser_diag.outputs import atomic_write_text, table_csv
from ser_diag.vocabulary import MSP_PODCAST
from ser_diag.schema import (ATTRIBUTE_NAMES, ATTRIBUTES, CLASS_CODES, CLASS_NAMES, TASK_ATTRIBUTES,
                             TASK_CATEGORICAL, TASKS)

__all__ = ["Listing", "Rows", "column_name", "format_votes", "compute_votes"]

_COLUMNS = {
    "FileName": "file", "SpkrID": "speaker", "Gender": "gender", "EmoClass_true": "true class",
    "EmoClass_pred": "predicted", "EmoClass_pred_compare": "predicted (compare)",
    "P_pred": "probability of the prediction", "votes": "annotators' votes", "n_votes": "annotators",
    "vote_share_true": "votes for the true class", "vote_share_pred": "votes for the prediction",
    "error": "error (pred - true)", "error_compare": "error (compare)", "right": "right",
    "transcript": "transcript", "audio": "audio",
}
for _attr in ATTRIBUTES:
    _COLUMNS.update({f"{_attr}_true": f"true {ATTRIBUTE_NAMES[_attr]}",
                     f"{_attr}_pred": f"predicted {ATTRIBUTE_NAMES[_attr]}",
                     f"{_attr}_pred_compare": f"predicted {ATTRIBUTE_NAMES[_attr]} (compare)",
                     f"{_attr}_annotators": f"annotators' {ATTRIBUTE_NAMES[_attr]} scores"})


def column_name(column: str, system: str | None = None, compare: str | None = None) -> str:
    """Header a person reads for a column of :meth:`Rows.cell_utterances` or
    :meth:`Rows.disagreement_list` (machine names stay in the CSV export); ``system`` /
    ``compare`` name whose prediction a column holds.

    >>> column_name("EmoVal_pred", "sysA"), column_name("EmoClass_pred_compare", "sysA", "sysB")
    ('predicted valence by sysA', 'predicted by sysB')
    """
    text = _COLUMNS.get(column, human_name(column))
    if compare is not None and text.endswith("(compare)"):
        return text.replace("(compare)", f"by {compare}").replace("error by", "error of").replace("  ", " ")
    if system is not None and (column == "EmoClass_pred" or column in {f"{a}_pred" for a in ATTRIBUTES}):
        return f"{text} by {system}"
    return text


def format_votes(counts: np.ndarray) -> np.ndarray:
    """Compact vote text per row of a files x classes count matrix, most votes first:
    ``'F 6 · U 1'``."""
    counts = np.asarray(counts, dtype=np.int64)
    order = np.argsort(-counts, axis=1, kind="stable")
    ranked = np.take_along_axis(counts, order, axis=1)
    pieces = np.where(ranked > 0, np.asarray(CLASS_CODES, dtype=object)[order] + " "
                      + ranked.astype(str).astype(object), None)
    return np.array([" · ".join(p for p in row if p is not None) for row in pieces], dtype=object)


def compute_votes(engine: Engine):
    """Per file (sorted FileName index): :func:`ser_diag.io.soft_labels`, the compact vote
    text (:func:`format_votes`) and each attribute's annotator scores as text (sorted,
    ``"3 4 4.5"``), all files at once; None without detailed labels. Cached by the engine under
    :data:`~ser_diag.explorer.engine.VOTES_KEY`."""
    detailed = engine.detailed_labels()
    if detailed is None:
        return None
    soft = io.soft_labels(detailed)
    counts = np.rint(soft[list(CLASS_CODES)].to_numpy() * soft["n_votes"].to_numpy()[:, None]).astype(np.int64)
    votes = pd.Series(format_votes(counts), index=soft.index)
    files, names = pd.factorize(detailed["FileName"], sort=True)
    scores = {}
    for attribute in ATTRIBUTES:
        values = detailed[attribute].to_numpy(float)
        rows = np.lexsort((values, files))                 # by file, then by score
        text = pd.Series(values[rows]).map(lambda x: f"{x:g} ").to_numpy(object)
        starts = np.flatnonzero(np.r_[True, np.diff(files[rows]) != 0])
        joined = np.add.reduceat(text, starts)
        scores[attribute] = pd.Series(joined, index=pd.Index(names[files[rows][starts]])).str.rstrip(" ")
    return soft, votes, scores


@dataclasses.dataclass
class Listing:
    """What the rows area shows for one state: ``title`` and ``table`` (the files), or only a
    ``message`` saying why nothing is listed. ``state`` is the state it answers."""

    state: ExplorerState
    title: str
    table: pd.DataFrame | None = None
    message: str = ""

    @property
    def files(self) -> list[str]:
        return [] if self.table is None else self.table["FileName"].astype(str).tolist()


def _sorted(table: pd.DataFrame, sort_by: str | None, ascending: bool) -> pd.DataFrame:
    if sort_by is not None:
        if sort_by not in table:
            raise ValueError(f"cannot sort by {sort_by!r}; columns: {list(table.columns)}")
        table = table.sort_values(sort_by, ascending=ascending, kind="stable", na_position="last")
    return table.reset_index(drop=True)


class Rows:
    """The cells of the view of ``state`` and the files behind them, from ``engine``'s data."""

    def __init__(self, engine: Engine, state: ExplorerState):
        self.engine, self.state, self.key = engine, state, state.data_key
        self.voc = getattr(engine, "vocabulary", MSP_PODCAST)

    # ------------------------------------------------------------------ cells a view offers
    def diagnostics(self):
        return self.engine.diagnostics(self.key, self.state.bins)

    def bin_labels(self, attribute: str) -> list[str]:
        return self.engine.bin_labels(attribute, self.state.bins, self.key)

    def group_options(self) -> list[tuple[str, str]]:
        """``(label, value)`` choices for ``cell_true`` in the agreement view (the agreement and
        annotator-SD bins) and the podcast view (the podcasts of the diagnostics' table, worst
        first for the system); empty otherwise or without data."""
        s = self.state
        if s.view not in GROUP_VIEWS or views.unavailable(self.diagnostics(), s):
            return []
        if s.view == "annotator_agreement":
            table = self.diagnostics().tables["annotator_agreement_bins"]
            labels = {TASK_CATEGORICAL: "classes", TASK_ATTRIBUTES: "attributes"}
            pairs = table[["task", "group"]].drop_duplicates()
            return [(f"{g} ({labels.get(task, task)})", str(g)) for task, g in pairs.itertuples(index=False)]
        return [(f"podcast {g} ({n} files, {'classes' if task == TASK_CATEGORICAL else 'attributes'})", g)
                for g, (task, n) in self._podcast_tasks().items()]

    def _podcast_tasks(self) -> dict[str, tuple[str, int]]:
        """Podcast -> (task its files are listed from, files) for the selected system: the
        podcasts of its classes worst first by macro-F1, then those only its attributes have
        enough files in, worst first by mean CCC."""
        table = self.diagnostics().tables["podcast_metrics"]
        own = table[table["system"].astype(str) == self.state.system]
        out: dict[str, tuple[str, int]] = {}
        for task in TASKS:
            part = own[(own["task"] == task) & (own["metric"] == views.HEADLINE_OF[task])]
            part = part.sort_values(["estimate", "group"], kind="stable")
            for group, n in part[["group", "n"]].itertuples(index=False):
                out.setdefault(str(group), (task, int(n)))
        return out

    def group_value(self, value) -> str:
        what = "agreement bin" if self.state.view == "annotator_agreement" else "podcast"
        return choice(self.group_options(), value, what)

    def cell_options(self) -> list[tuple[str, object]]:
        """``(label, value)`` choices for ``cell_true``/``cell_pred`` in the view (class names ->
        codes, bin labels -> bin indices, agreement bins, podcasts); empty for other views."""
        s = self.state
        if s.view == "confusion":
            return [(self.voc.class_names[c], c) for c in self.voc.classes]
        if s.view_attribute:
            return [(label, i) for i, label in enumerate(self.bin_labels(s.view_attribute))]
        if s.view in GROUP_VIEWS:
            return self.group_options()
        return []

    def cell_value(self, value):
        """A cell value of the view in canonical form (class code, bin index, agreement bin or
        podcast); ValueError when the view has no such cell."""
        if self.state.view in GROUP_VIEWS:
            return self.group_value(value)
        if self.state.view_attribute:
            return bin_index(self.bin_labels(self.state.view_attribute), value, self.state.view_attribute)
        return class_code(value, self.voc)

    def cell_label(self, value) -> str:
        """How a person reads a class code, bin index, agreement bin or podcast of the view."""
        if value is None:
            return "any"
        value, attribute = self.cell_value(value), self.state.view_attribute
        if self.state.view in GROUP_VIEWS:
            return value if self.state.view == "annotator_agreement" else f"podcast {value}"
        return self.bin_labels(attribute)[value] if attribute else self.voc.class_names[value]

    # ------------------------------------------------------------------ files
    def _rows(self, task: str, system: str) -> pd.DataFrame:
        return self.engine.rows(task, system, self.key)

    def _aligned_compare(self, rows: pd.DataFrame, task: str) -> pd.DataFrame | None:
        """The comparison system's rows in the order of ``rows`` (by FileName)."""
        s = self.state
        if s.compare_system is None:
            return None
        other = self._rows(task, s.compare_system)
        position = pd.Index(other["FileName"]).get_indexer(rows["FileName"])
        if (position < 0).any():
            raise ValueError(f"{s.compare_system!r} is not scored on every file of {s.system!r}")
        return other.iloc[position].reset_index(drop=True)

    def _class_cell(self, true, pred) -> pd.DataFrame:
        rows = self._rows(TASK_CATEGORICAL, self.state.system)
        keep = np.ones(len(rows), dtype=bool)
        if true is not None:
            keep &= rows["EmoClass_true"].to_numpy(str) == class_code(true, self.voc)
        if pred is not None:
            keep &= rows["EmoClass_pred"].to_numpy(str) == class_code(pred, self.voc)
        cell = rows.loc[keep]
        table = cell[["FileName", "SpkrID", "Gender", "EmoClass_true", "EmoClass_pred"]].copy()
        probs = list(self.voc.prob_columns)
        if all(p in cell for p in probs) and cell[probs].notna().all(axis=None):
            k = pd.Index(self.voc.classes).get_indexer(cell["EmoClass_pred"].to_numpy(str))
            table["P_pred"] = cell[probs].to_numpy(float)[np.arange(len(cell)), k]
        other = self._aligned_compare(cell, TASK_CATEGORICAL)
        if other is not None:
            table["EmoClass_pred_compare"] = other["EmoClass_pred"].to_numpy()
        return table

    def _bin_cell(self, attribute: str, true, pred) -> pd.DataFrame:
        if attribute not in self.voc.attribute_names:
            raise ValueError(f"attribute must be one of {self.voc.attribute_names}, not {attribute!r}")
        rows = self._rows(TASK_ATTRIBUTES, self.state.system)
        edges = self.engine.bin_edges(attribute, self.state.bins, self.key)
        labels = self.bin_labels(attribute)
        t = rows[f"{attribute}_true"].to_numpy(float)
        p = rows[f"{attribute}_pred"].to_numpy(float)
        keep = ~(np.isnan(t) | np.isnan(p))
        if true is not None:
            keep &= binned.assign_bins(t, edges) == bin_index(labels, true, attribute)
        if pred is not None:
            keep &= binned.assign_bins(p, edges) == bin_index(labels, pred, attribute)
        cell = rows.loc[keep]
        table = cell[["FileName", "SpkrID", "Gender", f"{attribute}_true", f"{attribute}_pred"]].copy()
        table["error"] = table[f"{attribute}_pred"] - table[f"{attribute}_true"]
        other = self._aligned_compare(cell, TASK_ATTRIBUTES)
        if other is not None:
            table[f"{attribute}_pred_compare"] = other[f"{attribute}_pred"].to_numpy()
            table["error_compare"] = table[f"{attribute}_pred_compare"] - table[f"{attribute}_true"]
        return table

    def _with_votes_and_corpus(self, table: pd.DataFrame, attribute: str | None) -> pd.DataFrame:
        """``table`` with the annotators' votes (when detailed labels exist) and the corpus'
        transcript and audio path (:func:`ser_diag.io.corpus_files`)."""
        votes = self.engine.cached(VOTES_KEY, lambda: compute_votes(self.engine))
        if votes is not None:
            soft, text, scores = votes
            position = soft.index.get_indexer(table["FileName"])
            found = position >= 0
            safe = np.where(found, position, 0)
            table["votes"] = np.where(found, text.to_numpy(object)[safe], None)
            table["n_votes"] = pd.array(np.where(found, soft["n_votes"].to_numpy()[safe], 0), dtype="Int64")
            table.loc[~found, "n_votes"] = pd.NA
            shares = soft[list(CLASS_CODES)].to_numpy()
            for which, column in (("true", "EmoClass_true"), ("pred", "EmoClass_pred")):
                if column in table:
                    k = pd.Index(CLASS_CODES).get_indexer(table[column].to_numpy(str))
                    table[f"vote_share_{which}"] = np.where(found & (k >= 0), shares[safe, np.maximum(k, 0)], np.nan)
            if attribute is not None:
                table[f"{attribute}_annotators"] = scores[attribute].reindex(table["FileName"]).to_numpy()
        extra = io.corpus_files(self.engine.corpus, table["FileName"])
        for column in extra.columns[1:]:
            table[column] = extra[column].to_numpy()
        return table

    def _finish(self, table, attribute, sort_by, ascending) -> pd.DataFrame:
        table = self._with_votes_and_corpus(table, attribute)
        s = self.state
        return _sorted(table, sort_by or s.sort_by, s.ascending if ascending is None else ascending)

    def cell_utterances(self, true=None, pred=None, attribute: str | None = None, *,
                        sort_by: str | None = None, ascending: bool | None = None) -> pd.DataFrame:
        """The files in one cell of the view, for the selected system (what
        :meth:`ser_diag.explorer.Explorer.cell_utterances` describes)."""
        s = self.state
        if true is None and pred is None and attribute is None:
            true, pred = s.cell_true, s.cell_pred
        attribute = attribute or s.view_attribute
        table = self._class_cell(true, pred) if attribute is None else self._bin_cell(attribute, true, pred)
        return self._finish(table, attribute, sort_by, ascending)

    def group_files(self, value) -> pd.Index:
        """FileNames of an agreement bin (from the diagnostics' ``annotator_agreement`` table)
        or of a podcast (:func:`ser_diag.analysis.where.podcast_of` of the split's files)."""
        from ser_diag.analysis.where import podcast_of

        value = str(value)
        if self.state.view == "annotator_agreement":
            agreement = self.diagnostics().tables["annotator_agreement"]
            column = "sd_bin" if value in SD_BINS else "agreement_bin"
            return pd.Index(agreement.loc[agreement[column].astype(str) == value, "FileName"])
        merged = [self.engine.merged(t, self.key) for t in self.engine.tasks(self.key)]
        files = pd.Index(pd.unique(pd.concat([m["FileName"] for m in merged])))
        return files[(podcast_of(files).astype(object).to_numpy() == value)]

    def group_utterances(self, value=None, *, sort_by: str | None = None,
                         ascending: bool | None = None) -> pd.DataFrame:
        """The files of an agreement bin or podcast (default: the state's ``cell_true``) for the
        selected system, in the listing's columns: the class truth and prediction (annotator
        agreement bins; podcasts in the system's per-podcast macro-F1) or every attribute's truth
        and prediction (annotator-SD bins; podcasts with enough files for attributes only),
        votes, transcript and audio."""
        s = self.state
        value = self.group_value(s.cell_true if value is None else value)
        files = self.group_files(value)
        if s.view == "annotator_agreement":
            attributes = value in SD_BINS
        else:
            attributes = self._podcast_tasks()[value][0] == TASK_ATTRIBUTES
        if attributes:
            rows = self._rows(TASK_ATTRIBUTES, s.system)
            rows = rows.loc[rows["FileName"].isin(files)]
            columns = ["FileName", "SpkrID", "Gender"] + [f"{a}_{w}" for a in self.voc.attribute_names for w in ("true", "pred")]
            table = rows[columns].reset_index(drop=True)
        else:
            table = self._class_cell(None, None)
            table = table.loc[table["FileName"].isin(files)].reset_index(drop=True)
        return self._finish(table, None, sort_by, ascending)

    def disagreement_list(self, true=None, attribute: str | None = None, *, sort_by: str | None = None,
                          ascending: bool | None = None) -> pd.DataFrame:
        """The files where the system and the comparison system disagree (what
        :meth:`ser_diag.explorer.Explorer.disagreement_list` describes)."""
        s = self.state
        if s.compare_system is None:
            raise ValueError("select a system to compare first")
        true = s.cell_true if true is None else true
        attribute = attribute or s.view_attribute
        if attribute is None:
            table = self._class_cell(true, None)
            a, b, t = table["EmoClass_pred"].to_numpy(str), table["EmoClass_pred_compare"].to_numpy(str), \
                table["EmoClass_true"].to_numpy(str)
        else:
            table = self._bin_cell(attribute, true, None)
            edges = self.engine.bin_edges(attribute, s.bins, self.key)
            t = binned.assign_bins(table[f"{attribute}_true"].to_numpy(float), edges)
            a = binned.assign_bins(table[f"{attribute}_pred"].to_numpy(float), edges)
            b = binned.assign_bins(table[f"{attribute}_pred_compare"].to_numpy(float), edges)
        differ = a != b
        table = table.loc[differ].copy()
        table["right"] = np.where(a[differ] == t[differ], s.system,
                                  np.where(b[differ] == t[differ], s.compare_system, "neither"))
        return self._finish(table.reset_index(drop=True), attribute, sort_by, ascending)

    # ------------------------------------------------------------------ what the rows area shows
    def listing(self) -> Listing:
        """What the rows area shows for the state (uncached; see
        :meth:`ser_diag.explorer.Explorer.listing`)."""
        s = self.state
        view, attribute = view_name(s.view), s.view_attribute
        if s.view in GROUP_VIEWS:
            message = views.unavailable(self.diagnostics(), s)
            if message:
                return Listing(s, "", message=message)
            if s.cell_true is None:
                what = "an agreement bin" if s.view == "annotator_agreement" else "a podcast"
                return Listing(s, "", message=f"No {what.split(' ', 1)[1]} chosen: choose {what} (buttons under "
                                                "the figure, or the list) to list its utterances.")
            table = self.group_utterances()
            label = self.cell_label(s.cell_true)
            where = f"annotator agreement '{label}'" if s.view == "annotator_agreement" else label
            return Listing(s, f"{len(table)} utterances of {where} ({s.system})", table)
        if not is_cell_view(s.view):
            return Listing(s, "", message=f"The {view} view has no cells to list; choose the confusion "
                                             "matrix, a binned view, annotator agreement or per-podcast metrics "
                                             "to list utterances.")
        what = "class" if attribute is None else f"{self.voc.attribute_displays[attribute]} bin"
        if s.disagree_only:
            if s.compare_system is None:
                return Listing(s, "", message="Choose a system to compare to list the files where the two "
                                                 "systems disagree.")
            table = self.disagreement_list()
            where = "" if s.cell_true is None else f" (true {what} {self.cell_label(s.cell_true)})"
            unit = "predicted classes" if attribute is None else f"predicted {self.voc.attribute_displays[attribute]} bins"
            return Listing(s, f"{len(table)} files where {s.system} and {s.compare_system} differ in "
                              f"{unit}{where}", table)
        if s.cell_true is None and s.cell_pred is None:
            return Listing(s, "", message="No cell chosen: click a cell of the figure (or choose true and "
                                             "predicted below) to list its utterances.")
        table = self.cell_utterances()
        parts = [f"{side} {what} {self.cell_label(value)}" for side, value in
                 (("true", s.cell_true), ("predicted", s.cell_pred)) if value is not None]
        return Listing(s, f"{len(table)} utterances with {' and '.join(parts)} ({s.system})", table)

    def to_csv(self, path: str | os.PathLike, **cell) -> Path:
        """Write :meth:`cell_utterances` (``cell``: its arguments; default the state's cell) as
        CSV; in a group view the group's files; with ``disagree_only`` and no arguments, the
        disagreement list."""
        s = self.state
        if not cell and s.view in GROUP_VIEWS:
            table = self.group_utterances()
        elif not cell and s.disagree_only and s.compare_system:
            table = self.disagreement_list()
        else:
            table = self.cell_utterances(**cell)
        return atomic_write_text(path, table_csv(table, self.engine.synthetic(s.split)))
