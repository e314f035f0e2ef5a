"""One module per question, each returning tidy frames (``ci_low``/``ci_high`` and the unit):
``confusion``, ``binned``, ``regression_to_mean``, ``bias`` (with its sums in
``grouped_sums``), ``fusion``, ``ranks``, ``agreement``, ``where``, and ``beyond`` (the last
three from the resamples the metrics table drew).

Every analysis reads the data's vocabulary (:func:`ser_diag.evaluation.vocabulary_of`: a
:class:`~ser_diag.evaluation.TaskData`'s, or a merged frame's ``attrs["vocabulary"]``,
MSP-Podcast's by default): its classes in macro-F1 order and their display names, its
attributes with their scales, its split names. What only MSP-Podcast has (per-annotator labels,
podcasts in file names) gives an empty table with one note for another corpus; so do a corpus
without speakers (utterances are resampled) or without gender.
"""
