"""One training entry point for the reference models (nanoGPT-lean).

``train(config)`` trains one system, early-stops on the development metric
(:mod:`ser_diag.metrics`), checkpoints every epoch with everything an exact resume needs, and
writes the system's predictions for the Development and Test3 files in the challenge layout::

    <out_dir>/predictions/<system_name>/categorical.csv   FileName,EmoClass,P_A..P_N  (Development)
    <out_dir>/predictions/<system_name>/attributes.csv    FileName,EmoAct,EmoVal,EmoDom
    (any other corpus, ``TrainConfig.vocabulary``: its codes, P_<code> and attribute names,
    :mod:`ser_diag.models.prediction_files`; leave-one-session-out: :mod:`ser_diag.models.folds`)
    <out_dir>/predictions_test3/<system_name>/...          the same for Test3 (any other split:
                                                          predictions_<split lower case>)
    <out_dir>/runs/<system_name>/config.json, metrics.jsonl, summary.json,
                                 checkpoints/last.pt, checkpoints/best.pt

Two input paths share one loop (:func:`loop._setup`, :func:`loop._train_epoch`,
:func:`loop._end_epoch`, :func:`loop._finish`):

* **frozen features** (default, fast): cached pooled or frame features per modality
  (:func:`open_feature_store`), z-normalised with Train statistics; a modality spec with
  ``"layer": "weighted"`` caches every hidden state and the model learns the softmax layer
  weights (:class:`ser_diag.models.heads.LayerWeightedInputs`);
* **fine-tuning** (``config.finetune`` non-empty, :mod:`ser_diag.models.finetune`): waveforms
  (and transcripts) through ``transformers`` encoders whose top layers are trained.

Modules, each importing only those above it (no circle):

* :mod:`.config`: :class:`TrainConfig` (keys, JSON parsing, ``augment`` validation, the
  corpus' vocabulary: :func:`~.config.resolve_vocabulary`, :func:`~.config.effective_tasks`,
  :func:`~.config.attribute_bounds`) and :class:`TrainResult`;
* :mod:`.distributed`: process group under ``torchrun``, device per process, gathering rows
  and objects across processes, per-process seeding (the DDP recipe is described there);
* :mod:`.data`: labels, feature stores and the feature cache, :class:`ArrayFeatures`,
  :class:`StreamedFrames`, normalisation, collation, targets, per-epoch draws,
  :func:`attention_weights`;
* :mod:`.checkpoints`: ``best.pt``/``last.pt`` (atomic writes), :func:`load_checkpoint`,
  resume, prediction files (:func:`predictions_dir`);
* :mod:`.loop`: setup, epoch, evaluation, finish, losses, schedule: :func:`train`,
  :func:`train_from_config`, :func:`predict`, :func:`development_metrics`.

This package re-exports the public names; private helpers are imported from their module.
"""

from ser_diag.models.augment import file_seed
from ser_diag.models.train.checkpoints import load_checkpoint, predictions_dir
from ser_diag.models.train.config import AUGMENTATIONS, TrainConfig, TrainResult
from ser_diag.models.train.data import (ArrayFeatures, StreamedFrames, attention_weights, epoch_soft_labels,
                                        open_augmented_views, open_feature_store)
from ser_diag.models.train.loop import development_metrics, predict, train, train_from_config

__all__ = ["AUGMENTATIONS", "ArrayFeatures", "StreamedFrames", "TrainConfig", "TrainResult", "attention_weights",
           "development_metrics", "epoch_soft_labels", "file_seed", "load_checkpoint", "open_augmented_views",
           "open_feature_store", "predict", "predictions_dir", "train", "train_from_config"]
