"""Read and write MSP-Podcast labels and challenge prediction files.

The only package that knows file layouts (see ``../shared/reference/msp_podcast_format.md``).
Readers validate everything and raise :class:`ser_diag.errors.InputError` naming file, row (the
line number in the file, header = line 1) and column. Writers produce exactly the official
layouts and write atomically.

Frames (see :mod:`ser_diag.schema`): ``labels`` one row per file; ``predictions`` one row per
``(system, FileName)``; ``merged`` one row per ``(system, FileName)`` for one task, with
``<col>_true`` / ``<col>_pred`` pairs.

Modules (each imports only those above it):

==================  ==========================================================================
``reading``         bytes to tables: decoding, the text reader (line-exact errors) and the typed
                    reader (pyarrow straight into numbers), the checks both share, Arrow lookups
``corpus``          a corpus folder: label file paths, the synthetic marker, transcripts, audio
``writers``         ``write_*``: the official layouts, written atomically
``labels``          consensus labels, per-annotator labels, soft labels, speakers
``predictions``     the three prediction layouts (one validation path), system folders, readers
``merge``           labels and predictions joined per task: ``merge``, ``load_podcast``, ``factorize``
``audformat_db``    an audformat database (``db.yaml``, read by the ``audformat`` library) into the
                    labels frame and its vocabulary
``corpora``         any corpus read with a vocabulary: a labels CSV, corpus-named prediction files,
                    audformat databases (``audformat_db``); ``load_corpus`` merges each task
``routes``          ``load``: MSP-Podcast's files to ``load_podcast``, any other corpus to ``corpora``
``submission``      ``validate_submission`` and lists of expected files (any corpus)
==================  ==========================================================================

Everything is re-exported here (``io.load``, ``io.read_labels``, ...). A test that patches a
private helper patches it in the module that calls it (``io.reading._plain_table``).
"""

from ser_diag.io.corpus import (
    LABELS_CONSENSUS,
    LABELS_DETAILED,
    SYNTHETIC_MARKER,
    corpus_files,
    detailed_labels_file,
    is_synthetic,
)
from ser_diag.io.labels import (
    _EMO_DETAIL,
    DETAILED_COLUMNS,
    UNKNOWN,
    _extract,
    read_detailed_labels,
    read_labels,
    soft_labels,
)
from ser_diag.io.merge import factorize, load_podcast, merge, task_of
from ser_diag.io.audformat_db import read_database
from ser_diag.io.corpora import is_audformat, load_corpus, read_corpus_labels, read_corpus_predictions
from ser_diag.io.routes import load
from ser_diag.io.predictions import (
    ARGMAX_TOLERANCE,
    PROB_RANGE_TOLERANCE,
    PROB_SUM_TOLERANCE,
    _read_prediction_file,
    _typed_prediction_file,
    out_of_range,
    read_predictions,
    read_systems,
    submitted,
)
from ser_diag.io.reading import _plain_decimals, _plain_table, _read_table, class_index, index_in
from ser_diag.io.submission import validate_submission
from ser_diag.io.writers import (
    write_attribute_predictions,
    write_categorical_predictions,
    write_labels_consensus,
    write_labels_detailed,
)

__all__ = [
    "is_synthetic",
    "load",
    "merge",
    "read_detailed_labels",
    "read_labels",
    "read_predictions",
    "read_systems",
    "soft_labels",
    "task_of",
    "validate_submission",
    "write_attribute_predictions",
    "write_categorical_predictions",
    "write_labels_consensus",
    "write_labels_detailed",
    "corpus_files",
    "detailed_labels_file",
    "submitted",
    "is_audformat",
    "load_corpus",
    "read_corpus_labels",
    "read_corpus_predictions",
    "read_database",
]
