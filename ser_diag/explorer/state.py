"""What the explorer shows: the selection, as plain values, and the rules of changing it.

Nothing here reads data, draws or imports widgets: :class:`ExplorerState` and its
:meth:`~ExplorerState.changed` (the checks of :meth:`ser_diag.explorer.Explorer.set` that need
only the lists of systems, splits and group columns), the views, and the pure parts of reading a
chosen cell (:func:`class_code`, :func:`bin_index`, :func:`choice`). What needs the data (bin
labels, agreement bins, podcasts) is asked of :mod:`ser_diag.explorer.listing`.

>>> s = ExplorerState(system="sysA")
>>> s = s.changed(dict(view="binned_EmoVal", cell_true=2), systems=["sysA", "sysB"],
...               splits=["Development"], group_columns=["Gender"])
>>> s.view_attribute, s.cell_true, s.data_key
('EmoVal', 2, ('Development', None, None))
>>> s.changed(dict(bins="quantile"), systems=["sysA"], splits=["Development"], group_columns=[]).cell_true is None
True
"""

from __future__ import annotations

import dataclasses
from numbers import Integral

from ser_diag.analysis.binned import SCHEMES as BIN_SCHEMES
from ser_diag.names import human_name
from ser_diag.schema import CLASS_CODES, CLASS_NAMES
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = ["VIEWS", "CELL_VIEWS", "GROUP_VIEWS", "BEYOND_VIEWS", "BIN_SCHEMES", "ExplorerState", "view_name",
           "views_of", "cell_views_of", "is_cell_view", "class_code", "bin_index", "choice"]

#: Beyond-the-paper views (issue 12), drawn from the diagnostics' ``leaderboard_ranks``,
#: ``leaderboard_pairs``, ``annotator_agreement*``, ``human_ceiling``, ``podcast_metrics``,
#: ``gender_gap_by_podcast`` and ``duration_metrics`` tables.
BEYOND_VIEWS = ("leaderboard_ranks", "win_probability", "annotator_agreement", "podcasts", "durations")
#: Views of the explorer; ``binned_<attr>`` is the paper's Fig. 3b-d matrix of that attribute.
VIEWS = ("confusion", "binned_EmoAct", "binned_EmoVal", "binned_EmoDom", "regression_to_mean",
         "gender_audit", "topk_fusion") + BEYOND_VIEWS
#: Views whose cells list utterances.
CELL_VIEWS = ("confusion", "binned_EmoAct", "binned_EmoVal", "binned_EmoDom")
#: Views whose groups list utterances: ``cell_true`` is an agreement bin (``'majority'``, ``'high SD'``)
#: or a podcast (``'7025'``).
GROUP_VIEWS = ("annotator_agreement", "podcasts")
_VIEW_NAMES = {"confusion": "confusion matrix", "regression_to_mean": "regression to the mean",
               "gender_audit": "gender audit", "topk_fusion": "top-K fusion",
               "leaderboard_ranks": "leaderboard: ranks and tiers",
               "win_probability": "pairwise win probability",
               "annotator_agreement": "annotator agreement and human ceiling",
               "podcasts": "per-podcast metrics", "durations": "metrics by duration"}
#: Fields whose change shows other data, so a chosen cell (and the sort order) no longer applies.
_MOVES = ("view", "split", "group_column", "group_value", "bins")
_NAME_TO_CODE = {name.lower(): code for code, name in CLASS_NAMES.items()}


def views_of(vocabulary: Vocabulary = MSP_PODCAST) -> tuple[str, ...]:
    """The views of a corpus: a ``binned_<attribute>`` view per attribute, regression to the
    mean only with attributes (MSP-Podcast: :data:`VIEWS`).

    >>> from ser_diag.vocabulary import IEMOCAP, CREMA_D
    >>> views_of(IEMOCAP)[:4], "regression_to_mean" in views_of(CREMA_D)
    (('confusion', 'binned_activation', 'binned_valence', 'binned_dominance'), False)
    """
    if vocabulary == MSP_PODCAST:
        return VIEWS
    attributes = vocabulary.attribute_names
    return (("confusion",) + tuple(f"binned_{a}" for a in attributes)
            + (("regression_to_mean",) if attributes else ()) + ("gender_audit", "topk_fusion") + BEYOND_VIEWS)


def cell_views_of(vocabulary: Vocabulary = MSP_PODCAST) -> tuple[str, ...]:
    """The views of a corpus whose cells list utterances (MSP-Podcast: :data:`CELL_VIEWS`)."""
    if vocabulary == MSP_PODCAST:
        return CELL_VIEWS
    return ("confusion",) + tuple(f"binned_{a}" for a in vocabulary.attribute_names)


def is_cell_view(view: str) -> bool:
    """Whether ``view``'s cells list utterances: the confusion matrix or a binned matrix (any
    corpus' :func:`cell_views_of`)."""
    return view == "confusion" or view.startswith("binned_")


def view_name(view: str, vocabulary: Vocabulary | None = None) -> str:
    """The reader's name of a view: ``'binned_EmoVal'`` -> ``'binned valence'`` (``vocabulary``:
    the corpus whose attributes the view may name; default MSP-Podcast's).

    >>> from ser_diag.vocabulary import IEMOCAP
    >>> view_name("binned_EmoVal"), view_name("topk_fusion"), view_name("binned_activation", IEMOCAP)
    ('binned valence', 'top-K fusion', 'binned arousal')
    """
    return _VIEW_NAMES.get(view) or human_name(view, vocabulary)


@dataclasses.dataclass
class ExplorerState:
    """What the explorer shows. Plain values only; :meth:`changed` checks a change against the
    choices, :meth:`ser_diag.explorer.Explorer.set` also against the data.

    ``group_column``/``group_value`` keep only the files whose label column equals the value
    (compared as text, so ``SpkrID`` 127 and ``"127"`` are the same); ``None`` = all files.
    ``cell_true``/``cell_pred`` select a confusion cell (class codes) in the ``confusion`` view
    or a bin (index or label) of the view's attribute in a ``binned_*`` view; ``None`` = any;
    in the agreement and podcast views ``cell_true`` is an agreement bin or a podcast.
    ``disagree_only`` (with a ``compare_system``) lists the files where the two systems
    disagree, filtered by ``cell_true`` when set.
    """

    system: str
    compare_system: str | None = None
    split: str = "Development"
    group_column: str | None = None
    group_value: object = None
    view: str = "confusion"
    bins: str = "unit"
    cell_true: object = None
    cell_pred: object = None
    sort_by: str | None = None
    ascending: bool = True
    disagree_only: bool = False

    @property
    def data_key(self) -> tuple:
        """``(split, group_column, group_value as text)``: which files the numbers are of."""
        return (self.split, self.group_column, None if self.group_value is None else str(self.group_value))

    @property
    def selected_systems(self) -> list[str]:
        """The system, and the comparison system when one is chosen."""
        return [self.system] + ([self.compare_system] if self.compare_system else [])

    @property
    def view_attribute(self) -> str | None:
        """The attribute of a ``binned_*`` view, else None."""
        return self.view.removeprefix("binned_") if self.view.startswith("binned_") else None

    def changed(self, changes: dict, *, systems, splits, group_columns, views=VIEWS) -> ExplorerState:
        """A new state with ``changes`` (any field) after checking the values against the
        choices (``systems``, ``splits``, ``group_columns``, ``views``: the corpus' views,
        :func:`views_of`); raises ValueError.

        A comparison system equal to the system is dropped; no group column, no group value.
        Changing the view, split, group or bins clears the selected cell and the sort order
        unless the same change sets them. Whether a cell exists in the view, and whether the
        group has files, needs the data: :meth:`ser_diag.explorer.Explorer.set` checks it.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(ExplorerState)}
        if unknown:
            raise ValueError(f"unknown state fields {sorted(unknown)}")
        new = dataclasses.replace(self, **changes)
        for name in ("system", "compare_system"):
            value = getattr(new, name)
            if value is not None and str(value) not in systems:
                raise ValueError(f"unknown system {value!r}; systems: {list(systems)}")
            setattr(new, name, None if value is None else str(value))
        if new.compare_system == new.system:
            new.compare_system = None
        if new.view not in views:
            raise ValueError(f"view must be one of {tuple(views)}, not {new.view!r}")
        if new.bins not in BIN_SCHEMES:
            raise ValueError(f"bins must be one of {BIN_SCHEMES}, not {new.bins!r}")
        if new.split not in splits:
            raise ValueError(f"split {new.split!r} has no predictions; splits: {list(splits)}")
        if new.group_column is not None and new.group_column not in group_columns:
            raise ValueError(f"group column must be one of {list(group_columns)}, not {new.group_column!r}")
        if new.group_column is None:
            new.group_value = None
        if any(getattr(new, f) != getattr(self, f) for f in _MOVES):
            for name in ("cell_true", "cell_pred", "sort_by"):
                if name not in changes:
                    setattr(new, name, None)
        return new

    def likely_next(self, systems, likely, max_other_systems: int = 12, views=VIEWS,
                    cell_views=CELL_VIEWS) -> list[tuple[ExplorerState, bool]]:
        """``(state, compare_only)`` whose figures a next change is likely to show, most likely
        first, no cell chosen: every other view of these systems, split, group and bins; this
        view for the other systems (the first ``max_other_systems`` of ``systems``); this view
        compared with those of ``likely`` (e.g. each task's best system and the baseline);
        ``views``/``cell_views``: the corpus' (:func:`views_of`, :func:`cell_views_of`).
        ``compare_only``: a confusion or binned view, where only the comparison panel is a
        figure (the matrix is clickable); such a state without a comparison system is left out.

        >>> s = ExplorerState(system="a", view="topk_fusion")
        >>> [(n.view, n.system, n.compare_system, c) for n, c in s.likely_next(["a", "b"], ["b"])][-3:]
        [('durations', 'a', None, False), ('topk_fusion', 'b', None, False), ('topk_fusion', 'a', 'b', False)]
        """
        cleared = dataclasses.replace(self, cell_true=None, cell_pred=None)
        wanted = [(dataclasses.replace(cleared, view=view), view in cell_views) for view in views if view != self.view]
        others = [o for o in list(systems)[:max_other_systems] if o not in (self.system, self.compare_system)]
        wanted += [(dataclasses.replace(cleared, system=o), self.view in cell_views) for o in others]
        wanted += [(dataclasses.replace(cleared, compare_system=o), self.view in cell_views)
                   for o in others if o in likely]
        return [(state, c) for state, c in wanted if not (c and state.compare_system is None)]


def class_code(value, vocabulary: Vocabulary | None = None) -> str:
    """The class code of a code or a class name (any case) of ``vocabulary``'s classes
    (default MSP-Podcast's).

    >>> from ser_diag.vocabulary import IEMOCAP
    >>> class_code("fear"), class_code("A"), class_code("Happiness", IEMOCAP), class_code("sad", IEMOCAP)
    ('F', 'A', 'happy', 'sad')
    """
    text = str(value)
    if vocabulary is None or vocabulary == MSP_PODCAST:
        codes, by_name = CLASS_CODES, _NAME_TO_CODE
    else:
        codes = vocabulary.classes
        by_name = {name.lower(): code for code, name in vocabulary.class_names.items()}
    code = text if text in codes else by_name.get(text.lower())
    if code is None:
        raise ValueError(f"unknown class {value!r}; use a code {tuple(codes)} or a name")
    return code


def bin_index(labels: list[str], value, attribute: str) -> int:
    """The index of a bin of ``attribute`` given as index, label or the label's end.

    >>> bin_index(["[1, 2)", "[2, 3)", "[3, 7]"], "[2, 3)", "EmoVal"), bin_index(["low", "high"], 1, "EmoVal")
    (1, 1)
    """
    if isinstance(value, Integral) and 0 <= int(value) < len(labels):
        return int(value)
    if str(value) in labels:
        return labels.index(str(value))
    matches = [i for i, label in enumerate(labels) if label.endswith(str(value))]
    if len(matches) == 1:
        return matches[0]
    raise ValueError(f"unknown {attribute} bin {value!r}; bins: {list(enumerate(labels))}")


def choice(options: list[tuple[str, str]], value, what: str) -> str:
    """The value of one of ``options`` (``(label, value)`` pairs) given as value or label.

    >>> choice([("podcast 7 (40 files, classes)", "7")], "podcast 7 (40 files, classes)", "podcast")
    '7'
    """
    values = [v for _, v in options]
    text = str(value)
    if text in values:
        return text
    by_label = [v for label, v in options if label == text]
    if by_label:
        return by_label[0]
    raise ValueError(f"unknown {what} {value!r}; choose one of {values}")
