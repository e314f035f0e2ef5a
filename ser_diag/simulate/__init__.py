"""A seeded synthetic challenge with planted, parameterised effects, in the official layouts.

Labels (:func:`simulate_labels`) follow MSP-Podcast: the Development class mix (or Test3's
400 per class), attributes on 1-7 averaged from 5-8 simulated annotators per file, per-file
vote distributions whose plurality is the consensus class (``X`` rows: a tie, no plurality),
speakers with Zipf-like utterance counts and a gender each.

Systems (:func:`simulate_systems`) are described by :class:`SystemSpec`; every effect the
diagnostics look for is a parameter, so an analysis can be checked against what was planted:

* categorical: logits ``z = skill * sim(y, .) + noise`` with noise sd 1 and
  ``sim(y, j) = exp(-dist(y, j) / SIMILARITY_SCALE)`` (``dist``: distance between the class
  attribute profiles; ``sim(y, y) = 1``), so errors go to similar classes. The predicted
  class is ``argmax z`` and ``P_* = softmax(z)``. With probability ``minority_to_anger`` a
  fear/disgust/contempt file has its anger logit swapped with its top logit (so it is
  predicted as anger).
* attributes (Lin's parameters): with ``m``, ``sd`` the mean and sd of the true attribute
  over the files and ``z = (true - m) / sd``,
  ``pred = m + bias + v * sd * (rho * z + sqrt(1 - rho^2) * z_err)``, clipped to [1, 7], where
  ``v`` is :attr:`SystemSpec.shrinkage`, ``rho`` :attr:`SystemSpec.rho` and ``z_err`` a
  standard normal error. Before clipping: Pearson correlation with the truth ``rho``, scale
  ``sd_pred / sd_true = v`` (< 1: regression to the mean), slope of E[pred | true]
  ``rho * v``, ``mean_pred - mean_true = bias`` and
  ``CCC = 2 rho v / (1 + v^2 + (bias / sd)^2)`` (Lin: ``C_b = 2 / (v + 1/v + u^2)`` with
  ``u = bias / (sd sqrt(v))``). :func:`rho_for_ccc` inverts the CCC for ``bias = 0``.
* extremes (paper finding 2: worst for low arousal, low dominance, high valence):
  ``extreme_compression = c`` replaces ``z`` on the hard side of the mean
  (:data:`HARD_SIDE`: below it for arousal and dominance, above it for valence) by
  ``(1 - c) z`` and re-standardises the result (mean 0, sd 1) before it enters the formula
  above, so mean, ``v`` and ``rho``'s error share keep their meaning. The slope of
  E[pred | true] is then ``rho v (1 - c) / sd_k`` on the hard side and ``rho v / sd_k`` on the
  other (``sd_k``: sd of the kinked ``z``, about 0.86 at ``c = 0.3`` for a bell-shaped truth),
  and the correlation with the truth drops by the factor ``corr(kinked z, z)`` (about 0.994
  at ``c = 0.3``). ``c = 0`` (the :class:`SystemSpec` default) is the plain model.
* ``gender_gap = g``: noise sd x ``(1 + g/2)`` for female and x ``(1 - g/2)`` for male
  speakers (logit noise and attribute ``z_err``); ``g > 0`` makes the system worse on
  female speech.
* inter-system error correlation ``error_correlation = r`` (per target): every noise term
  (logits, anger swap, ``z_err``) is ``sqrt(r) * common + sqrt(1 - r) * own``, the common part
  shared by all systems, so fusing systems removes only the own part.

* corpus structure shared by every system (:func:`plant_structure`, recorded in
  ``simulation_truth.json``): errors partly per speaker (``speaker_error_share``: a speaker
  bias per attribute and a per-speaker confusion tendency, variance kept), harder files where
  the annotators disagree (``agreement_effect``), one hard podcast (``hard_podcast_factor``)
  and a few female speakers who carry part of the gender gap (``gap_speakers``).
  Speakers have heavy-tailed (Zipf-like) file counts, a speaker-level gender, a label offset
  per speaker, and a share of ``Unknown`` speakers and genders. :func:`simulate_challenge`
  also plants a tie (two systems with the same spec) when it simulates 5 or more systems.

:func:`default_systems` spreads systems from baseline-like to top-like quality
(:data:`DEFAULT_RANGE`, calibrated to the published numbers: macro-F1 0.33 -> 0.43, mean CCC
0.58 -> 0.61 on a Development-like split; sd ratios 0.65 -> 0.85). Everything written is
marked synthetic (``SYNTHETIC_DEMO.txt``, :data:`SYNTHETIC_BANNER`).

The package, one module per concern (imports go down this list, never up; ``labels``,
``specs`` and ``calibration`` import nothing of the package):

- :mod:`~ser_diag.simulate.labels`: class mix, speakers, file names, annotators' votes and
  scores, consensus and per-annotator labels (:func:`simulate_labels`, :data:`CLASS_PROFILES`);
- :mod:`~ser_diag.simulate.specs`: :class:`SystemSpec`, :func:`default_systems` and their
  defaults (:data:`DEFAULT_RANGE`, :data:`DEFAULT_ERROR_CORRELATION`, :data:`HARD_SIDE`);
- :mod:`~ser_diag.simulate.structure`: the corpus structure all systems share
  (:func:`plant_structure`, :func:`vote_agreement`, :data:`STRUCTURE_DEFAULTS`);
- :mod:`~ser_diag.simulate.predictions`: the systems' predictions (:func:`simulate_systems`);
- :mod:`~ser_diag.simulate.challenge`: the challenge folder and ``simulation_truth.json``
  (:func:`simulate_challenge`);
- :mod:`~ser_diag.simulate.calibration`: a null world for calibration checks
  (:func:`speaker_null_frames`);
- :mod:`~ser_diag.simulate.corpora`: a synthetic corpus in another preset vocabulary (IEMOCAP,
  CREMA-D, EmoDB, MSP-Podcast) as an audformat database and as CSVs (:func:`simulate_corpus`).
"""

from ser_diag.simulate.labels import (
    CLASS_PROFILES,
    DEFAULT_N,
    DEVELOPMENT_COUNTS,
    EXTRA_SHARE,
    SPEAKERS_PER_PODCAST,
    class_counts,
    podcast_of,
    simulate_labels,
)
from ser_diag.simulate.specs import (
    DEFAULT_ERROR_CORRELATION,
    DEFAULT_RANGE,
    HARD_SIDE,
    SIMILARITY_SCALE,
    SystemSpec,
    default_systems,
    rho_for_ccc,
)
from ser_diag.simulate.structure import STRUCTURE_DEFAULTS, plant_structure, vote_agreement
from ser_diag.simulate.predictions import simulate_systems
from ser_diag.simulate.challenge import simulate_challenge
from ser_diag.simulate.calibration import speaker_null_frames
from ser_diag.simulate.corpora import CORPORA, simulate_corpus

__all__ = [
    "CLASS_PROFILES",
    "CORPORA",
    "DEFAULT_ERROR_CORRELATION",
    "DEFAULT_N",
    "DEFAULT_RANGE",
    "DEVELOPMENT_COUNTS",
    "EXTRA_SHARE",
    "HARD_SIDE",
    "SIMILARITY_SCALE",
    "SPEAKERS_PER_PODCAST",
    "STRUCTURE_DEFAULTS",
    "SystemSpec",
    "class_counts",
    "default_systems",
    "plant_structure",
    "podcast_of",
    "rho_for_ccc",
    "simulate_challenge",
    "simulate_corpus",
    "simulate_labels",
    "simulate_systems",
    "speaker_null_frames",
    "vote_agreement",
]
