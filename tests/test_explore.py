"""The explorer's state class, driven from Python: cells, bins, group filter, corpus columns,
CSV export, system comparison, the widget mapping and the notebook built on it.

Expected values come from the challenge files read with plain pandas, not from ser_diag.io.
"""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ser_diag import metrics
from ser_diag.explore import VIEWS, Explorer
from ser_diag.schema import ATTRIBUTES, CLASS_CODES
from ser_diag.simulate import simulate_challenge

REPO = Path(__file__).resolve().parent.parent
N_BOOT = 30


@pytest.fixture(scope="module")
def challenge(tmp_path_factory) -> Path:
    return simulate_challenge(tmp_path_factory.mktemp("sim") / "challenge", seed=5, n_systems=3, n=600)


@pytest.fixture(scope="module")
def explorer(challenge) -> Explorer:
    return Explorer(challenge, challenge / "predictions", n_boot=N_BOOT)


@pytest.fixture()
def ex(explorer) -> Explorer:
    """The shared explorer, reset to its first system and no filter (caches kept)."""
    explorer.set(system=explorer.systems[0], compare_system=None, group_column=None, view="confusion",
                 bins="unit", cell_true=None, cell_pred=None, sort_by=None)
    return explorer


def _truth(challenge: Path, system: str, task: str) -> pd.DataFrame:
    """Labels of the Development split joined with one system's prediction file, by pandas alone."""
    labels = pd.read_csv(challenge / "Labels" / "labels_consensus.csv", dtype={"SpkrID": str})
    labels = labels[labels["Split_Set"] == "Development"]
    preds = pd.read_csv(challenge / "predictions" / system / f"{task}.csv")
    joined = labels.merge(preds, on="FileName", suffixes=("_true", "_pred"))
    if task == "categorical":
        joined = joined[joined["EmoClass_true"].isin(CLASS_CODES)]
    return joined


def _unit_bin(values) -> np.ndarray:
    """[1,2) -> 0 ... [6,7] -> 5, values beyond 1..7 in the outer bins."""
    return np.clip(np.floor(np.asarray(values, float)) - 1, 0, 5).astype(int)


# --------------------------------------------------------------------------- cells

def test_every_confusion_cell_returns_exactly_its_files(ex, challenge):
    system = ex.systems[1]
    ex.set(system=system)
    truth = _truth(challenge, system, "categorical")
    total = 0
    for t in CLASS_CODES:
        for p in CLASS_CODES:
            table = ex.cell_utterances(true=t, pred=p)
            expected = truth.loc[(truth["EmoClass_true"] == t) & (truth["EmoClass_pred"] == p), "FileName"]
            assert sorted(table["FileName"]) == sorted(expected), (t, p)
            assert (table["EmoClass_true"] == t).all() and (table["EmoClass_pred"] == p).all()
            total += len(table)
    assert total == len(truth)
    # names work as codes do, and the state's selected cell is the default
    ex.set(cell_true="Fear", cell_pred="Anger")
    assert ex.cell_utterances()["FileName"].tolist() == ex.cell_utterances(true="F", pred="A")["FileName"].tolist()


def test_attribute_bin_cell_returns_exactly_its_files(ex, challenge):
    system = ex.systems[2]
    truth = _truth(challenge, system, "attributes")
    ex.set(system=system, view="binned_EmoVal", cell_true=4, cell_pred=3)
    table = ex.cell_utterances()
    in_cell = (_unit_bin(truth["EmoVal_true"]) == 4) & (_unit_bin(truth["EmoVal_pred"]) == 3)
    assert len(table) > 0
    assert sorted(table["FileName"]) == sorted(truth.loc[in_cell, "FileName"])
    np.testing.assert_allclose(table["error"], table["EmoVal_pred"] - table["EmoVal_true"])
    # by label, for another attribute, without changing the view
    table = ex.cell_utterances(attribute="EmoAct", true="[2, 3)", pred="[4, 5)")
    in_cell = (_unit_bin(truth["EmoAct_true"]) == 1) & (_unit_bin(truth["EmoAct_pred"]) == 3)
    assert sorted(table["FileName"]) == sorted(truth.loc[in_cell, "FileName"])
    # quantile bins: bottom 25 % of the true values predicted in the middle 50 %
    ex.set(bins="quantile")
    edges = np.quantile(truth["EmoDom_true"], [0.0, 0.25, 0.75, 1.0])
    index = lambda v: np.searchsorted(edges[1:-1], v, side="right")  # noqa: E731
    table = ex.cell_utterances(attribute="EmoDom", true=0, pred=1)
    in_cell = (index(truth["EmoDom_true"]) == 0) & (index(truth["EmoDom_pred"]) == 1)
    assert sorted(table["FileName"]) == sorted(truth.loc[in_cell, "FileName"])


def test_votes_come_from_the_detailed_labels(ex, challenge):
    table = ex.cell_utterances(true="A", pred="A")
    detailed = pd.read_csv(challenge / "Labels" / "labels_detailed.csv")
    name = table["FileName"].iloc[0]
    judgements = detailed.loc[detailed["FileName"] == name, "EmoDetail"].str.split(";").str[1].str.strip()
    counted = judgements[~judgements.str.startswith("Other")]
    assert table["n_votes"].iloc[0] == len(counted)
    assert table["vote_share_true"].iloc[0] == pytest.approx((counted == "Angry").mean())
    scores = detailed.loc[detailed["FileName"] == name, "EmoDetail"].str.extract(r"A:\s*([\d.]+)")[0].astype(float)
    ex.set(view="binned_EmoAct")
    row = ex.cell_utterances(true=None, pred=None, attribute="EmoAct").set_index("FileName").loc[name]
    assert sorted(float(x) for x in row["EmoAct_annotators"].split()) == sorted(scores)


# --------------------------------------------------------------------------- group filter

def test_group_filter_gives_the_subgroups_metrics(ex, challenge):
    system = ex.systems[0]
    cat, att = _truth(challenge, system, "categorical"), _truth(challenge, system, "attributes")
    ex.set(system=system)
    everyone = ex.metrics_table().set_index(["system", "metric"])["estimate"]
    ex.set(group_column="Gender", group_value="Female")
    female = ex.metrics_table().set_index(["system", "metric"])["estimate"]
    f_cat, f_att = cat[cat["Gender"] == "Female"], att[att["Gender"] == "Female"]
    assert female[(system, "macro_f1")] == pytest.approx(metrics.macro_f1(f_cat["EmoClass_true"], f_cat["EmoClass_pred"]))
    assert female[(system, "ccc_EmoVal")] == pytest.approx(metrics.ccc(f_att["EmoVal_true"], f_att["EmoVal_pred"]))
    assert everyone[(system, "macro_f1")] == pytest.approx(metrics.macro_f1(cat["EmoClass_true"], cat["EmoClass_pred"]))
    assert female[(system, "macro_f1")] != pytest.approx(everyone[(system, "macro_f1")])
    assert ex.metrics_table()["n"].max() == len(f_att)
    # a speaker, given as an integer, matches the file's text id
    speaker = att.loc[att["SpkrID"] != "Unknown", "SpkrID"].value_counts().index[0]
    ex.set(group_column="SpkrID", group_value=int(speaker))
    one = ex.metrics_table().set_index(["system", "metric"])["estimate"]
    s_att = att[att["SpkrID"] == speaker]
    assert one[(system, "ccc_EmoAct")] == pytest.approx(metrics.ccc(s_att["EmoAct_true"], s_att["EmoAct_pred"]))
    assert set(ex.cell_utterances(attribute="EmoAct")["FileName"]) == set(s_att["FileName"])
    with pytest.raises(ValueError):
        ex.set(group_column="Gender", group_value="Nobody")


# --------------------------------------------------------------------------- corpus columns, export

def _write_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(1600, dtype=np.int16).tobytes())


def test_transcript_and_audio_columns_only_with_a_corpus(ex, challenge, tmp_path):
    plain = ex.cell_utterances(true="A", pred="A")
    assert "transcript" not in plain and "audio" not in plain and "votes" in plain
    corpus = tmp_path / "corpus"
    shutil.copytree(challenge / "Labels", corpus / "Labels")
    (corpus / "Transcripts").mkdir()
    (corpus / "Audios").mkdir()
    chosen = plain["FileName"].iloc[:3].tolist()
    for i, name in enumerate(chosen):
        (corpus / "Transcripts" / f"{Path(name).stem}.txt").write_text(f"words of file {i}\n")
        _write_wav(corpus / "Audios" / name)
    rich = Explorer(ex.labels, ex.predictions, corpus=corpus, n_boot=N_BOOT)
    rich.set(system=ex.state.system)
    table = rich.cell_utterances(true="A", pred="A").set_index("FileName")
    for i, name in enumerate(chosen):
        assert table.loc[name, "transcript"] == f"words of file {i}"
        assert Path(table.loc[name, "audio"]).is_file()
    others = table.drop(index=chosen)
    assert others["transcript"].isna().all() and others["audio"].isna().all()
    only_text = tmp_path / "only_text"
    shutil.copytree(corpus / "Transcripts", only_text / "Transcripts")
    table = Explorer(ex.labels, ex.predictions, corpus=only_text, n_boot=N_BOOT).cell_utterances(true="A")
    assert "transcript" in table and "audio" not in table


def test_csv_export_round_trips_and_sorting(ex, tmp_path):
    ex.set(system=ex.systems[1], cell_true="N", cell_pred="H", sort_by="P_pred")
    table = ex.cell_utterances()
    assert table["P_pred"].is_monotonic_increasing
    descending = ex.cell_utterances(true="N", pred="H", sort_by="vote_share_pred", ascending=False)
    assert descending["vote_share_pred"].is_monotonic_decreasing
    path = ex.to_csv(tmp_path / "cell.csv")
    back = pd.read_csv(path, dtype={"SpkrID": "Int64"})
    assert list(back.columns) == list(table.columns)
    assert back["FileName"].tolist() == table["FileName"].tolist()
    pd.testing.assert_series_equal(back["P_pred"], table["P_pred"], check_dtype=False, rtol=1e-12)
    assert back["SpkrID"].tolist() == table["SpkrID"].tolist()
    assert back["votes"].tolist() == table["votes"].tolist()


# --------------------------------------------------------------------------- comparing systems

def test_disagreements_say_where_and_who_is_right(ex, challenge):
    a, b = ex.systems[0], ex.systems[2]
    ex.set(system=a, compare_system=b)
    table = ex.disagreements()
    ta, tb = _truth(challenge, a, "categorical"), _truth(challenge, b, "categorical").set_index("FileName")
    ta["pred_b"] = tb.loc[ta["FileName"], "EmoClass_pred"].to_numpy()
    for code in CLASS_CODES:
        rows = ta[ta["EmoClass_true"] == code]
        got = table[(table["task"] == "categorical") & (table["true"] == code)].iloc[0]
        differ = rows["EmoClass_pred"] != rows["pred_b"]
        assert got["n"] == len(rows) and got["disagree"] == differ.sum()
        assert got["a_right"] == (differ & (rows["EmoClass_pred"] == code)).sum()
        assert got["b_right"] == (differ & (rows["pred_b"] == code)).sum()
    att = table[table["task"] == "attributes"]
    assert set(att["attribute"]) == set(ATTRIBUTES)
    counts = att[["agree_right", "agree_wrong", "a_right", "b_right", "neither_right"]].sum(axis=1)
    assert (counts == att["n"]).all()
    cell = ex.cell_utterances(true="F", pred="A")
    assert "EmoClass_pred_compare" in cell
    expected = tb.loc[cell["FileName"], "EmoClass_pred"].tolist()
    assert cell["EmoClass_pred_compare"].tolist() == expected


# --------------------------------------------------------------------------- figures and widgets

def test_every_view_draws_the_library_figure(ex):
    a, b = ex.systems[0], ex.systems[1]
    for compare in (None, b):
        ex.set(system=a, compare_system=compare)
        for view in VIEWS:
            ex.set(view=view)
            fig = ex.figure()
            titles = " ".join(axis.get_title() for axis in fig.axes)
            if view not in ("topk_fusion", "regression_to_mean"):
                assert a in titles, (view, titles)
            if compare and view in ("confusion", "binned_EmoAct", "gender_audit"):
                assert b in titles, (view, titles)
            if view == "confusion":
                assert fig.axes[0].get_xlabel() == "Predicted class"
            assert "split Development" in fig.get_suptitle()
            assert "SYNTHETIC" in fig.get_suptitle()
            plt.close(fig)


def test_redraw_reuses_cached_analysis_and_png(ex, monkeypatch):
    ex.set(view="binned_EmoVal")
    plt.close(ex.figure())
    ex.set(view="confusion")
    plt.close(ex.figure())

    def recompute(*args, **kwargs):
        raise AssertionError("analysis recomputed for a state seen before")

    monkeypatch.setattr("ser_diag.explore.binned.binned_matrix", recompute)
    ex.set(view="binned_EmoVal")
    plt.close(ex.figure())                       # analysis cached: only drawing
    monkeypatch.undo()
    png = ex.figure_png()                        # what the widgets show, cached per state
    ex.set(view="confusion")
    again = ex.set(view="binned_EmoVal").figure_png()
    assert again is png and png.startswith(b"\x89PNG")  # the cached bytes, not a redraw
    ex.set(bins="quantile")
    assert ex.figure_png() != png                # a control change redraws


def test_cached_tables_equal_a_fresh_computation(ex, challenge):
    """What the explorer shows after many control changes (joint all-system tables sliced per
    system, background prefetch, cache) is exactly what a fresh explorer computes in that state,
    and matches the library called on that system alone."""
    from ser_diag.analysis import fusion, regression_to_mean

    ex.wait_prefetch()
    states = [dict(system=ex.systems[1], bins="unit"), dict(system=ex.systems[2], bins="quantile"),
              dict(system=ex.systems[0], bins="unit", group_column="Gender", group_value="Male")]
    for state in states:
        ex.set(view="regression_to_mean", **state)
        means, shrink = ex._bin_means(ex.state.system)
        fresh = Explorer(challenge, challenge / "predictions", n_boot=N_BOOT, prefetch=False)
        fresh.set(view="regression_to_mean", **state)
        fresh_means, fresh_shrink = fresh._bin_means(state["system"])
        pd.testing.assert_frame_equal(means, fresh_means)
        pd.testing.assert_frame_equal(shrink, fresh_shrink)
        rows = ex._rows("attributes", [state["system"]])
        alone = regression_to_mean.bin_means(rows, scheme=state["bins"], n_boot=N_BOOT)
        pd.testing.assert_frame_equal(means, alone, rtol=1e-9, atol=1e-12)
        alone = regression_to_mean.shrinkage_table(rows, n_boot=N_BOOT)
        pd.testing.assert_frame_equal(shrink, alone, rtol=1e-9, atol=1e-12)
        assert set(means["system"]) == {state["system"]}
        pd.testing.assert_frame_equal(ex._fusion(), fresh._fusion())
    # the fusion curve computed in the background at construction = the library's on the files
    ex.set(group_column=None)
    curve = fusion.topk_fusion_curve(ex.merged("categorical"), ex.merged("attributes"), n_boot=N_BOOT)
    pd.testing.assert_frame_equal(ex._fusion(), curve)


def test_vote_text_matches_the_detailed_labels(ex, challenge):
    detailed = pd.read_csv(challenge / "Labels" / "labels_detailed.csv")
    major = detailed["EmoDetail"].str.split(";").str[1].str.strip()
    names = {"Angry": "A", "Sad": "S", "Happy": "H", "Surprise": "U", "Fear": "F", "Disgust": "D",
             "Contempt": "C", "Neutral": "N"}
    detailed["code"] = major.map(names)
    table = ex.cell_utterances(true="N")
    for name, votes in table[["FileName", "votes"]].itertuples(index=False):
        counts = detailed.loc[detailed["FileName"] == name, "code"].value_counts()
        expected = sorted(counts.items(), key=lambda kv: (-kv[1], "ASHUFDCN".index(kv[0])))
        assert votes == " ".join(f"{c}:{n}" for c, n in expected), name


def test_caption_states_the_interactive_bootstrap(ex):
    ex.set(view="regression_to_mean")
    fig = ex.figure()
    assert f"{N_BOOT} utterance bootstrap resamples" in fig.get_suptitle()
    plt.close(fig)


def test_widgets_only_copy_values_onto_the_state(ex):
    from ser_diag.explore import _ExplorerWidgets

    ui = _ExplorerWidgets(ex)
    ui.controls["view"].value = "binned_EmoAct"
    assert ex.state.view == "binned_EmoAct"
    assert [label for label, _ in ui.cell["cell_true"].options][1:] == ex.bin_labels("EmoAct")
    ui.cell["cell_true"].value = 5
    assert ex.state.cell_true == 5
    ui.controls["group_column"].value = "Gender"
    assert ex.state.group_column is None                    # waits for a value
    ui.controls["group_value"].value = "Male"
    assert (ex.state.group_column, ex.state.group_value) == ("Gender", "Male")
    ui.controls["compare_system"].value = ex.systems[1]
    assert ex.state.compare_system == ex.systems[1]
    assert ex.show().children


# --------------------------------------------------------------------------- notebook

def test_notebook_01_runs_headless(tmp_path, monkeypatch):
    import nbformat
    import papermill

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / "01_explore_results.ipynb"), str(out),
                               parameters=dict(DATA_DIR=None, N_FILES=400, N_SYSTEMS=3, N_BOOT=20),
                               kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for cell in executed.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "p_value" in text and "macro_f1" in text
    assert "SYNTHETIC" in text
