"""The aligned evaluation value: its bookkeeping equals an independent computation from the
merged frame (pandas groupby, drop_duplicates), it is built once and read by every analysis,
and an analysis gives the same table from a TaskData as from the frame."""

import numpy as np
import pandas as pd
import pytest

from ser_diag import io
from ser_diag.analysis import bias, confusion
from ser_diag.evaluation import Evaluation, TaskData, aligned, class_codes
from ser_diag.resampling import Resampling, bootstrap_metrics
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.simulate import simulate_challenge


@pytest.fixture(scope="module")
def challenge(tmp_path_factory):
    root = simulate_challenge(tmp_path_factory.mktemp("evaluation") / "challenge", seed=3, n_systems=3, n=600)
    return root, Evaluation.load(root / "Labels" / "labels_consensus.csv", root / "predictions")


def test_load_equals_io_load(challenge):
    root, data = challenge
    loaded = io.load(root / "Labels" / "labels_consensus.csv", root / "predictions")
    for task in (TASK_CATEGORICAL, TASK_ATTRIBUTES):
        pd.testing.assert_frame_equal(data.to_frame(task), loaded[task])
    pd.testing.assert_frame_equal(data.labels, loaded["labels"])
    assert data.synthetic
    assert data.systems == list(pd.unique(loaded[TASK_CATEGORICAL]["system"]))


def test_bookkeeping_equals_an_independent_computation(challenge):
    _, data = challenge
    for task, aligned_task in data.tasks().items():
        frame = aligned_task.frame
        assert aligned_task.task == task
        groups = frame.groupby("system", sort=False).indices
        assert list(aligned_task.systems) == list(groups)
        for system, rows in groups.items():
            np.testing.assert_array_equal(aligned_task.positions[system], rows)
        first = frame.drop_duplicates("FileName")
        np.testing.assert_array_equal(aligned_task.first_rows, first.index.to_numpy())
        assert aligned_task.n_files == frame["FileName"].nunique()
        np.testing.assert_array_equal(aligned_task.file_names[aligned_task.file_code], frame["FileName"].to_numpy(str))
        pd.testing.assert_series_equal(aligned_task.speakers().reset_index(drop=True),
                                       first["SpkrID"].reset_index(drop=True))
        pd.testing.assert_frame_equal(aligned_task.files(["FileName", "SpkrID"]),
                                      first[["FileName", "SpkrID"]].reset_index(drop=True))
        (names, rows), = aligned_task.blocks()                 # every system on the same files
        assert names == list(groups)
        for r in rows:
            np.testing.assert_array_equal(frame["FileName"].to_numpy(str)[r], frame["FileName"].to_numpy(str)[rows[0]])


def test_systems_x_files_arrays(challenge):
    _, data = challenge
    cat = data.categorical
    (names, rows), = cat.blocks()
    codes = cat.class_codes("EmoClass_pred", rows)
    assert codes.shape == (len(names), cat.n_files)
    for i, name in enumerate(names):
        expected = [CLASS_CODES.index(c) for c in cat.frame.loc[cat.frame["system"] == name, "EmoClass_pred"]]
        assert codes[i].tolist() == expected
    att = data.attributes
    (names, rows), = att.blocks()
    values = att.attribute_values("pred", rows)
    assert values.shape == (len(names), att.n_files, len(ATTRIBUTES))
    one = att.frame.loc[att.frame["system"] == names[-1], [f"{a}_pred" for a in ATTRIBUTES]].to_numpy()
    np.testing.assert_array_equal(values[-1], one)


def test_unknown_class_code_is_named():
    with pytest.raises(ValueError, match="EmoClass_pred holds 'Q'"):
        class_codes(pd.DataFrame({"EmoClass_pred": ["A", "Q"]}), "EmoClass_pred")


def test_a_task_data_and_its_frame_give_the_same_tables(challenge):
    _, data = challenge
    settings = Resampling(n_boot=50, seed=1)
    for task_data in data.tasks().values():
        pd.testing.assert_frame_equal(bootstrap_metrics(task_data, settings),
                                      bootstrap_metrics(task_data.frame, settings))
        pd.testing.assert_frame_equal(bias.speaker_metrics(task_data, min_utterances=5),
                                      bias.speaker_metrics(task_data.frame, min_utterances=5))
    pd.testing.assert_frame_equal(confusion.confusion_table(data.categorical),
                                  confusion.confusion_table(data.to_frame(TASK_CATEGORICAL)))


def test_aligned_passes_an_aligned_value_through(challenge):
    _, data = challenge
    assert aligned(data.categorical) is data.categorical
    assert aligned(None) is None
    assert TaskData.of(data.categorical.frame) is not data.categorical
    with pytest.raises(ValueError, match="task must be one of"):
        data.task("valence")
