"""Bootstrap confidence intervals and paired tests, vectorised through resample-count weights.

A bootstrap resample of ``n`` items is represented by its count vector ``w`` (how often each
item was drawn), so every metric is a *weighted* metric and B resamples are one ``(B, n)``
weight matrix: confusion matrices are ``W @ onehot`` and CCC moments are
``W @ [x, y, x^2, y^2, xy]`` (:mod:`ser_diag.metrics`). Resampling speakers instead of utterances
(cluster bootstrap) only changes how ``W`` is drawn. Intervals are percentile intervals
(Efron & Tibshirani 1993, ch. 13), named ``ci_low``/``ci_high`` with their ``level`` and ``unit``.

All systems of a merged frame are scored on the same resamples, so their intervals are paired
and :func:`paired_test` can bootstrap the difference between two systems directly. Weights are
drawn and consumed in chunks of rows, so 1,000 resamples x 32k files x 10 systems needs well
under a gigabyte. Statistics that are linear in the weights (the scorers,
:class:`LinearStatistic`) are scored on a speaker bootstrap from the speakers' counts and each
speaker's summed rows (:func:`cluster_scorer`), never expanding a resample to row weights: the
same counts, and moment sums equal up to rounding (added in another order).

The package, one module per concern (imports go down this list, never up):

- :mod:`~ser_diag.resampling.settings`: :class:`Resampling` (n_boot, level, unit, seed, ddof);
- :mod:`~ser_diag.resampling.draws`: resample-count weights, cluster ids, the shared weight cache;
- :mod:`~ser_diag.resampling.scorers`: confusion and CCC scorers, linear statistics, cluster scoring;
- :mod:`~ser_diag.resampling.intervals`: percentile intervals, :func:`bootstrap`, :func:`bootstrap_metrics`;
- :mod:`~ser_diag.resampling.paired`: :func:`paired_test` and permutation p-values.
"""

from ser_diag.resampling.settings import (CHUNK_ROWS, SUMS_BLOCK_BYTES, UNITS, WEIGHT_CHUNK_BYTES, Resampling,
                                          Statistic)
from ser_diag.resampling.draws import (_weight_chunks, bootstrap_weights, cluster_ids, shared_weights,
                                       uncached_weights)
from ser_diag.resampling.scorers import (_AttributeScorer, _CategoricalScorer, _membership, _scorer,
                                         LinearStatistic, attribute_statistics, categorical_statistics,
                                         cluster_scorer, confusion_statistics)
from ser_diag.resampling.intervals import (FEW_SPEAKERS, bootstrap, bootstrap_distribution, bootstrap_metrics,
                                           few_speakers_note, group_speakers_notes, no_speakers_note,
                                           percentile_interval,
                                           scorer_metrics, widen_interval)
from ser_diag.resampling.paired import paired_test, permutation_p_value

__all__ = [
    "FEW_SPEAKERS",
    "LinearStatistic",
    "Resampling",
    "UNITS",
    "attribute_statistics",
    "cluster_ids",
    "few_speakers_note",
    "group_speakers_notes",
    "no_speakers_note",
    "permutation_p_value",
    "bootstrap",
    "bootstrap_distribution",
    "bootstrap_metrics",
    "bootstrap_weights",
    "scorer_metrics",
    "categorical_statistics",
    "confusion_statistics",
    "paired_test",
    "percentile_interval",
    "shared_weights",
    "uncached_weights",
    "widen_interval",
]
