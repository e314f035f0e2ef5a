"""The explorer's state class, driven from Python: cells, bins, group filter, corpus columns,
CSV export, system comparison, the widget mapping and the notebook built on it.

Expected values come from the challenge files read with plain pandas, not from ser_diag.io.
"""

from __future__ import annotations

import os
import re
import shutil
import wave
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ser_diag import io, metrics
from ser_diag.diagnostics import diagnose
from ser_diag.explorer import BEYOND_VIEWS, CELL_VIEWS, GROUP_VIEWS, VIEWS, Explorer, ExplorerWidgets
from ser_diag.schema import ATTRIBUTES, CLASS_CODES
from ser_diag.simulate import simulate_challenge

REPO = Path(__file__).resolve().parents[2]
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
                 bins="unit", cell_true=None, cell_pred=None, sort_by=None, ascending=True,
                 disagree_only=False)
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
    s_att = att[att["SpkrID"] == speaker]
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
    assert list(back.columns) == list(table.columns) + ["synthetic"]   # exports say where they came from
    assert back["synthetic"].all()
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


def test_disagreement_list_has_both_predictions_truth_and_votes(ex, challenge, tmp_path):
    a, b = ex.systems[0], ex.systems[2]
    ex.set(system=a, compare_system=b, disagree_only=True)
    ta, tb = _truth(challenge, a, "categorical"), _truth(challenge, b, "categorical").set_index("FileName")
    ta["pred_b"] = tb.loc[ta["FileName"], "EmoClass_pred"].to_numpy()
    differ = ta[ta["EmoClass_pred"] != ta["pred_b"]]
    listing = ex.listing()
    assert sorted(listing.files) == sorted(differ["FileName"])
    table = listing.table.set_index("FileName")
    expected = differ.set_index("FileName")
    assert (table["EmoClass_pred"] == expected.loc[table.index, "EmoClass_pred"]).all()
    assert (table["EmoClass_pred_compare"] == expected.loc[table.index, "pred_b"]).all()
    assert (table["EmoClass_true"] == expected.loc[table.index, "EmoClass_true"]).all()
    right = np.where(expected["EmoClass_pred"] == expected["EmoClass_true"], a,
                     np.where(expected["pred_b"] == expected["EmoClass_true"], b, "neither"))
    assert (table["right"] == pd.Series(right, index=expected.index).loc[table.index]).all()
    assert table["votes"].notna().all()
    # filtered by true class: the disagreements of that class, as many as the summary counts
    ex.set(cell_true="S")
    summary = ex.disagreements()
    sad = summary[(summary["task"] == "categorical") & (summary["true"] == "S")].iloc[0]
    assert sorted(ex.listing().files) == sorted(differ.loc[differ["EmoClass_true"] == "S", "FileName"])
    assert len(ex.listing().files) == sad["disagree"]
    # binned view: files whose two predictions fall in different valence bins, one true bin
    ex.set(view="binned_EmoVal", cell_true=3)
    va, vb = _truth(challenge, a, "attributes"), _truth(challenge, b, "attributes").set_index("FileName")
    va["pred_b"] = vb.loc[va["FileName"], "EmoVal_pred"].to_numpy()
    keep = (_unit_bin(va["EmoVal_true"]) == 3) & (_unit_bin(va["EmoVal_pred"]) != _unit_bin(va["pred_b"]))
    assert sorted(ex.listing().files) == sorted(va.loc[keep, "FileName"])
    # exportable: the CSV is the listing
    back = pd.read_csv(ex.to_csv(tmp_path / "disagree.csv"))
    assert back["FileName"].tolist() == ex.listing().files


def test_headline_table_has_human_names_and_files_per_task(challenge):
    """Attributes withheld for 50 files: the table says how many files each task scored."""
    predictions = io.read_systems(challenge / "predictions")
    withheld = predictions["FileName"].drop_duplicates().iloc[:50]
    predictions.loc[predictions["FileName"].isin(withheld), list(ATTRIBUTES)] = np.nan
    ex = Explorer(challenge, predictions, n_boot=0, prefetch=False, intersection=True)
    table = ex.headline_table(systems="all")
    system = ex.systems[0]
    cat, att = _truth(challenge, system, "categorical"), _truth(challenge, system, "attributes")
    att = att[~att["FileName"].isin(withheld)]
    assert table.loc[system, "n categorical"] == len(cat)
    assert table.loc[system, "n attributes"] == len(att)
    assert "CCC arousal" in table.columns and "macro-F1" in table.columns
    assert not any("_" in str(c) for c in table.columns if not str(c).startswith("n "))
    assert float(table.loc[system, "CCC arousal"]) == pytest.approx(
        metrics.ccc(att["EmoAct_true"], att["EmoAct_pred"]), abs=5e-4)


# --------------------------------------------------------------------------- listing never stale

def test_listing_always_answers_the_current_state(ex, challenge):
    system = ex.state.system
    truth = _truth(challenge, system, "categorical")
    assert ex.listing().table is None and "No cell chosen" in ex.listing().message
    ex.set(view="binned_EmoVal", cell_true=3, cell_pred=3)
    valence = ex.listing()
    assert valence.table is not None and valence.state.view == "binned_EmoVal"
    for view in ("regression_to_mean", "topk_fusion", "gender_audit"):
        ex.set(view=view)
        listing = ex.listing()
        assert listing.table is None and listing.files == []
        assert "no cells" in listing.message and "regression to the mean" in ex.listing().message \
            if view == "regression_to_mean" else True
    ex.set(view="confusion")
    assert ex.listing().table is None                     # the cell went with the view
    ex.set(cell_true="F", cell_pred="A")
    expected = truth.loc[(truth["EmoClass_true"] == "F") & (truth["EmoClass_pred"] == "A"), "FileName"]
    assert sorted(ex.listing().files) == sorted(expected)
    with pytest.raises(ValueError):
        ex.set(cell_true="Boredom")
    assert ex.state.cell_true == "F"


def test_widgets_click_a_cell_then_change_view_leaves_nothing_stale(ex, challenge):
    ui = ExplorerWidgets(ex)
    assert "No cell chosen" in ui.rows.value
    truth = _truth(challenge, ex.state.system, "categorical")
    ui.grid.buttons[("S", "N")].click()                          # a click on the figure's cell
    assert (ex.state.cell_true, ex.state.cell_pred) == ("S", "N")
    assert "3px solid" in ui.grid.buttons[("S", "N")].layout.border
    assert "3px solid" not in ui.grid.buttons[("S", "A")].layout.border
    expected = truth.loc[(truth["EmoClass_true"] == "S") & (truth["EmoClass_pred"] == "N"), "FileName"]
    shown = set(re.findall(r'<td class="file">([^<]+)</td>', ui.rows.value))
    assert shown == set(ex.listing().table["FileName"].iloc[:ui.page_size])
    assert shown <= set(expected) and len(shown) == min(len(expected), ui.page_size)
    assert ui.cell["cell_true"].value == "Sadness"                # the dropdowns follow the click
    n_sn = len(expected)
    grid_count = int(ui.grid.buttons[("S", "N")].description.split("·")[1])
    assert grid_count == n_sn                                   # the figure's count = the listing
    ui.controls["view"].value = "regression_to_mean"
    assert "<td" not in ui.rows.value and "no cells" in ui.rows.value
    assert not shown & set(re.findall(r"MSP-PODCAST_[0-9_]+\.wav", ui.rows.value))
    ui.controls["view"].value = "binned_EmoAct"
    assert "No cell chosen" in ui.rows.value
    ui.cell["cell_true"].value = ex.bin_labels("EmoAct")[2]    # the dropdown still works
    assert ex.state.cell_true == 2 and 'data-cell="2|None"' in ui.rows.value
    ui.controls["compare_system"].value = ex.systems[1]
    ui.disagree.value = True
    assert ex.state.disagree_only and "differ in predicted arousal bins" in ui.rows.value
    ui.controls["group_column"].value = "Gender"
    assert ex.state.group_column is None                        # waits for a value
    ui.controls["group_value"].value = "Male"
    assert (ex.state.group_column, ex.state.group_value) == ("Gender", "Male")
    assert ex.show().children


def test_rows_are_paged_with_votes_and_audio_of_the_visible_page_only(ex, challenge, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(challenge / "Labels", corpus / "Labels")
    (corpus / "Audios").mkdir()
    (corpus / "Transcripts").mkdir()
    labels = pd.read_csv(challenge / "Labels" / "labels_consensus.csv")
    for name in labels["FileName"]:
        _write_wav(corpus / "Audios" / name)
        (corpus / "Transcripts" / f"{Path(name).stem}.txt").write_text("a long transcript " * 20)
    rich = Explorer(ex.labels, ex.predictions, corpus=corpus, n_boot=0, prefetch=False)
    ui = ExplorerWidgets(rich, page_size=7)
    rich_rows = _truth(challenge, rich.state.system, "categorical")
    ui.apply(cell_true="N")
    n = int((rich_rows["EmoClass_true"] == "N").sum())
    assert n > 14
    assert ui.rows.value.count("<audio") == 7 and ui.rows.value.count('<td class="file">') == 7
    assert f"rows 1-7 of {n}" in ui.rows.value and ("a long transcript " * 20).strip() in ui.rows.value
    assert re.search(r"[A-Z] \d+( · [A-Z] \d+)*</td>", ui.rows.value)    # compact votes
    first = re.findall(r'<td class="file">([^<]+)</td>', ui.rows.value)
    ui.next.click()
    second = re.findall(r'<td class="file">([^<]+)</td>', ui.rows.value)
    assert f"rows 8-14 of {n}" in ui.rows.value and not set(first) & set(second)
    ui.sort.value = "vote_share_true"
    ui.descending.value = True
    table = rich.listing().table
    assert table["vote_share_true"].is_monotonic_decreasing
    assert re.findall(r'<td class="file">([^<]+)</td>', ui.rows.value) == table["FileName"].iloc[:7].tolist()


# --------------------------------------------------------------------------- figures

def test_every_view_draws_the_library_figure(ex):
    a, b = ex.systems[0], ex.systems[1]
    for compare in (None, b):
        ex.set(system=a, compare_system=compare)
        for view in VIEWS:
            ex.set(view=view)
            if view == "durations":                      # no Audios/ in the simulated challenge
                with pytest.raises(ValueError, match="Audios"):
                    ex.figure()
                continue
            fig = ex.figure()
            titles = " ".join(axis.get_title() for axis in fig.axes)
            if view not in ("topk_fusion", "regression_to_mean") + BEYOND_VIEWS or view == "podcasts":
                assert a in titles, (view, titles)
            if view in ("leaderboard_ranks", "win_probability"):    # every system, the chosen in bold
                labels = [t for axis in fig.axes for t in axis.get_yticklabels()]
                assert {t.get_text() for t in labels} >= set(ex.systems)
                assert {t.get_text() for t in labels if t.get_fontweight() == "bold"} == {a} | ({b} if compare else set())
            if compare and view in ("confusion", "binned_EmoAct", "gender_audit"):
                assert b in titles, (view, titles)
            if view == "confusion":
                assert fig.axes[0].get_xlabel() == "Predicted class"
            assert "split Development" in fig.get_suptitle()
            assert "SYNTHETIC" in fig.get_suptitle()
            plt.close(fig)


def test_heatmap_cells_are_the_files_per_cell(ex, challenge):
    truth = _truth(challenge, ex.state.system, "attributes")
    ex.set(view="binned_EmoDom")
    cells = ex.heatmap()
    for i, t in enumerate(cells["row_values"]):
        for j, p in enumerate(cells["column_values"]):
            expected = ((_unit_bin(truth["EmoDom_true"]) == t) & (_unit_bin(truth["EmoDom_pred"]) == p)).sum()
            assert cells["count"][i, j] == expected
    assert cells["row_values"][0] == max(cells["row_values"])   # high values on top, as in Fig. 3


def test_explorer_numbers_are_the_diagnostics_of_the_group(ex, challenge, monkeypatch):
    """One orchestrator: the explorer's tables are :func:`diagnose` of the group's files, and a
    state seen before is not recomputed."""
    ex.wait_prefetch()
    ex.set(group_column="Gender", group_value="Male", bins="quantile", view="regression_to_mean")
    data = io.load(challenge, challenge / "predictions", split="Development")
    male = {t: f[f["Gender"] == "Male"].reset_index(drop=True) for t, f in data.items()
            if t in ("categorical", "attributes") and f is not None}
    for f, t in zip(male.values(), male):
        f.attrs = dict(data[t].attrs)
    fresh = diagnose(male["categorical"], male["attributes"], split="Development", scheme="quantile",
                     n_boot=N_BOOT)
    got = ex.diagnostics()
    for name in ("metrics", "bin_means", "shrinkage", "fusion_curve", "gender_metrics"):
        if name in fresh.tables:
            pd.testing.assert_frame_equal(got.tables[name].reset_index(drop=True),
                                          fresh.tables[name].reset_index(drop=True), check_dtype=False)
    plt.close(ex.figure())
    png = ex.figure_png()

    def recompute(*args, **kwargs):
        raise AssertionError("diagnostics recomputed for a state seen before")

    monkeypatch.setattr("ser_diag.explorer.engine.diagnose", recompute)
    ex.set(view="confusion")
    plt.close(ex.figure())
    assert ex.set(view="regression_to_mean").figure_png() is png


def test_figures_are_pre_rendered_in_the_background_and_kept(ex, monkeypatch):
    """After a redraw, the other views of the state and this view for the other systems are drawn
    in the background: switching to them draws nothing; the diagnostics stay cached beside
    hundreds of pre-rendered figures (counted apart)."""
    ex.set(view="regression_to_mean")
    ex.figure_png()
    ex.wait_prefetch()
    first = ex.diagnostics()

    def draw(*args, **kwargs):
        raise AssertionError("drawn in the foreground although pre-rendered")

    monkeypatch.setattr(Explorer, "_figure", draw)
    for view in ("topk_fusion", "leaderboard_ranks", "win_probability", "annotator_agreement", "podcasts",
                 "gender_audit"):
        assert ex.set(view=view).figure_png(prefetch=False)[:4] == b"\x89PNG"
    ex.set(view="regression_to_mean", system=ex.systems[-1])
    assert ex.figure_png(prefetch=False)[:4] == b"\x89PNG"
    monkeypatch.undo()
    for i in range(600):                                   # many drawn outputs later
        ex.engine.store(("png", "filler", i), b"")
    assert ex.diagnostics() is first


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
        assert votes == " · ".join(f"{c} {n}" for c, n in expected), name


def test_caption_states_the_interactive_bootstrap(ex):
    ex.set(view="regression_to_mean")
    fig = ex.figure()
    unit = ex.diagnostics().settings["unit"]
    assert unit == "speaker"                      # speakers are known: the default unit
    assert f"{N_BOOT} {unit} bootstrap resamples" in fig.get_suptitle()
    plt.close(fig)


# --------------------------------------------------------------------------- beyond the paper

_MAJOR = {"Angry": "A", "Sad": "S", "Happy": "H", "Surprise": "U", "Fear": "F", "Disgust": "D",
          "Contempt": "C", "Neutral": "N"}


def _agreement_bins(challenge: Path) -> pd.Series:
    """Per file of the Development split, by pandas alone: unanimous / majority / plurality (share
    of the judgements whose primary vote is the consensus class), 'no consensus' for X/O."""
    detailed = pd.read_csv(challenge / "Labels" / "labels_detailed.csv")
    detailed["code"] = detailed["EmoDetail"].str.split(";").str[1].str.strip().map(_MAJOR)
    labels = pd.read_csv(challenge / "Labels" / "labels_consensus.csv")
    labels = labels[labels["Split_Set"] == "Development"].set_index("FileName")
    detailed = detailed[detailed["FileName"].isin(labels.index)]
    detailed["agrees"] = detailed["code"].to_numpy() == labels.loc[detailed["FileName"], "EmoClass"].to_numpy()
    share = detailed.groupby("FileName")["agrees"].mean()
    consensus = labels.loc[share.index, "EmoClass"]
    return pd.Series(np.select([~consensus.isin(CLASS_CODES), share == 1, share > 0.5],
                               ["no consensus", "unanimous", "majority"], "plurality"), index=share.index)


def test_leaderboard_and_win_probability_views_rank_the_systems(ex, challenge):
    ex.set(view="leaderboard_ranks")
    assert ex.view_unavailable() is None
    (title, board), (ceiling_title, ceiling) = ex.view_tables()[:2]
    assert "rank interval" in title and "Human ceiling" in ceiling_title and "bias" in ceiling_title
    assert {"system", "metric", "estimate", "CI low", "CI high", "rank", "95% rank interval", "P(best)",
            "tier"} <= set(board.columns)
    f1 = {s: metrics.macro_f1(*_truth(challenge, s, "categorical")[["EmoClass_true", "EmoClass_pred"]].T.to_numpy())
          for s in ex.systems}
    part = board[board["metric"] == "macro-F1"]
    assert part["system"].tolist() == sorted(f1, key=f1.get, reverse=True)        # best first
    assert part["rank"].tolist() == [1, 2, 3]
    for row in part.to_dict("records"):
        assert row["estimate"] == pytest.approx(f1[row["system"]])
        low, high = map(int, row["95% rank interval"].split("-"))
        assert low <= row["rank"] <= high
    for metric, group in board.groupby("metric"):
        assert group["P(best)"].sum() == pytest.approx(1.0), metric
        assert group.loc[group["rank"] == 1, "tier"].iloc[0] == 1
    val = {s: metrics.ccc(*_truth(challenge, s, "attributes")[["EmoVal_true", "EmoVal_pred"]].T.to_numpy())
           for s in ex.systems}
    for row in board[board["metric"] == "CCC valence"].itertuples():
        assert row.estimate == pytest.approx(val[row.system])

    ex.set(view="win_probability")
    pairs = ex.view_table()
    f1_pairs = pairs[pairs["metric"] == "macro-F1"]
    assert len(f1_pairs) == 3 and set(pairs["metric"]) == {"macro-F1", "mean CCC"}
    for row in f1_pairs.to_dict("records"):
        assert row["A - B"] == pytest.approx(f1[row["system A"]] - f1[row["system B"]])
        assert 0 <= row["P(A beats B)"] <= 1 and 0 <= row["p (Holm)"] <= 1
    fig = ex.figure()
    assert [ax.get_title().split(":")[0] for ax in fig.axes if ax.get_title()][:2] == ["macro-F1", "mean CCC"]
    plt.close(fig)


def test_agreement_view_bins_are_the_annotators_votes_and_list_their_files(ex, challenge):
    bins = _agreement_bins(challenge)
    system = ex.systems[1]
    ex.set(system=system, view="annotator_agreement")
    cat = _truth(challenge, system, "categorical")
    cat["bin"] = bins.reindex(cat["FileName"]).to_numpy()
    table = ex.view_table()
    classes = table[table["metric"] == "macro-F1"].set_index("annotator agreement")
    assert set(classes["system"]) == {system}
    for name, rows in cat.groupby("bin"):
        assert classes.loc[name, "files"] == len(rows), name
        assert classes.loc[name, "estimate"] == pytest.approx(
            metrics.macro_f1(rows["EmoClass_true"], rows["EmoClass_pred"])), name
        assert classes.loc[name, "CI low"] <= classes.loc[name, "CI high"]
    att = _truth(challenge, system, "attributes")
    sd = table[table["metric"] == "CCC valence"]
    assert sd["annotator agreement"].tolist() == ["low SD", "mid SD", "high SD"]
    assert sd["files"].sum() == len(att)
    titles = [title for title, _ in ex.view_tables()]
    assert any(t.startswith("Human ceiling") for t in titles) and any(t.startswith("Soft-label") for t in titles)
    # choosing a bin lists its files, with the votes
    assert "No agreement bin chosen" in ex.listing().message
    ex.set(cell_true="plurality")
    listing = ex.listing()
    expected = cat.loc[cat["bin"] == "plurality", "FileName"]
    assert sorted(listing.files) == sorted(expected) and len(expected) > 10
    assert listing.title.startswith(f"{len(expected)} utterances of annotator agreement 'plurality'")
    assert listing.table["votes"].notna().all()
    ex.set(cell_true="high SD (attributes)")                     # by its label too
    assert ex.state.cell_true == "high SD" and "EmoVal_pred" in ex.listing().table
    with pytest.raises(ValueError):
        ex.set(cell_true="nearly unanimous")
    with pytest.raises(ValueError):
        ex.set(cell_true="majority", cell_pred="A")
    ex.set(view="podcasts")
    assert ex.state.cell_true is None and ex.listing().table is None     # the bin went with the view


def test_podcast_view_is_per_podcast_metrics_and_lists_a_podcasts_files(ex, challenge):
    system = ex.systems[2]
    ex.set(system=system, view="podcasts")
    cat = _truth(challenge, system, "categorical")
    cat["podcast"] = cat["FileName"].str.extract(r"^MSP-PODCAST_(\d+)_")[0]
    sizes = cat["podcast"].value_counts()
    table = ex.view_table()
    f1 = table[table["metric"] == "macro-F1"]
    assert set(f1["podcast"]) == set(sizes[sizes >= 50].index)                  # min 50 files a podcast
    for row in f1.itertuples():
        rows = cat[cat["podcast"] == row.podcast]
        assert row.files == len(rows)
        assert row.estimate == pytest.approx(metrics.macro_f1(rows["EmoClass_true"], rows["EmoClass_pred"]))
    assert f1["estimate"].is_monotonic_increasing                               # worst first
    options = ex.cell_options()
    assert [v for _, v in options][:len(f1)] == f1["podcast"].tolist()
    podcast = options[0][1]
    ex.set(cell_true=podcast)
    assert sorted(ex.listing().files) == sorted(cat.loc[cat["podcast"] == podcast, "FileName"])
    assert ex.listing().title.startswith(f"{sizes[podcast]} utterances of podcast {podcast}")


def test_beyond_views_without_data_say_so_in_one_line(ex, challenge, tmp_path):
    corpus = tmp_path / "bare"
    (corpus / "Labels").mkdir(parents=True)
    shutil.copy(challenge / "Labels" / "labels_consensus.csv", corpus / "Labels")
    bare = Explorer(corpus, challenge / "predictions", n_boot=N_BOOT, prefetch=False)
    ui = ExplorerWidgets(bare)
    ui.controls["view"].value = "podcasts"
    ui.cell["cell_true"].value = ui.cell["cell_true"].options[1]
    assert ui.rows.value.count('<td class="file">') > 0
    for view, words in (("annotator_agreement", "labels_detailed.csv"), ("durations", "Audios")):
        ui.controls["view"].value = view
        message = bare.view_unavailable()
        assert words in message and "\n" not in message
        assert bare.view_tables() == [] and bare.cell_options() == []
        with pytest.raises(ValueError, match=words.split(".")[0]):
            bare.figure()
        (only,) = ui.figure_area.children                         # one line, nothing else
        assert words in only.value and "<img" not in only.value and "<table" not in only.value
        assert "<td" not in ui.rows.value                         # no stale rows of the podcast
    # with Audios/: durations per bin are the files' durations from their headers
    corpus = tmp_path / "audio"
    shutil.copytree(challenge / "Labels", corpus / "Labels")
    (corpus / "Audios").mkdir()
    labels = pd.read_csv(challenge / "Labels" / "labels_consensus.csv")
    labels = labels[labels["Split_Set"] == "Development"]
    seconds = {name: 1.0 + (i % 12) for i, name in enumerate(labels["FileName"])}
    for name, length in seconds.items():
        with wave.open(str(corpus / "Audios" / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(1)
            w.setframerate(1000)
            w.writeframes(bytes(int(1000 * length)))
    timed = Explorer(corpus, challenge / "predictions", n_boot=N_BOOT, prefetch=False)
    system = timed.systems[0]
    timed.set(system=system, view="durations")
    assert timed.view_unavailable() is None
    table = timed.view_table()
    att = _truth(challenge, system, "attributes")
    length = att["FileName"].map(seconds)
    edges, names = [0, 3, 4.5, 6, 8, 11, np.inf], ["< 3 s", "3-4.5 s", "4.5-6 s", "6-8 s", "8-11 s", ">= 11 s"]
    expected = pd.cut(length, edges, labels=names, right=False).value_counts()
    got = table[(table["metric"] == "mean CCC") & (table["system"] == system)].set_index("duration")["files"]
    assert got.to_dict() == {k: v for k, v in expected.items() if v}
    plt.close(timed.figure())


# --------------------------------------------------------------------------- notebook

@pytest.mark.slow
def test_notebook_01_shows_the_challenges_numbers(challenge, tmp_path, monkeypatch):
    """Run notebook 01 on a known challenge; its headline table and its cell listing are the
    numbers and files computed here with pandas and the reference metrics."""
    import nbformat
    import papermill

    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / "01_explore_results.ipynb"), str(out),
                               parameters=dict(DATA_DIR=str(challenge), N_BOOT=20),
                               kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    outputs = {cell.metadata.get("tags", ["?"])[-1] if cell.metadata.get("tags") else i:
               "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                         for o in cell.get("outputs", []))
               for i, cell in enumerate(executed.cells) if cell.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "SYNTHETIC" in text
    for system in sorted(p.name for p in (challenge / "predictions").iterdir()):
        cat = _truth(challenge, system, "categorical")
        f1 = metrics.macro_f1(cat["EmoClass_true"], cat["EmoClass_pred"])
        row = next(line for line in outputs["headline"].splitlines() if line.startswith(system))
        assert f"{f1:.3f}" in row.split()[1], (system, row)
    best = re.search(r"best=(\S+)", outputs["listing"]).group(1)
    cat = _truth(challenge, best, "categorical")
    n_fa = int(((cat["EmoClass_true"] == "F") & (cat["EmoClass_pred"] == "A")).sum())
    assert f"{n_fa} utterances with true class Fear and predicted class Anger ({best})" in outputs["listing"]
    # beyond the leaderboard: the systems best first by macro-F1, then the plurality bin's files
    f1 = {s: metrics.macro_f1(*_truth(challenge, s, "categorical")[["EmoClass_true", "EmoClass_pred"]].T.to_numpy())
          for s in f1_systems(challenge)}
    rows = [line.split() for line in outputs["leaderboard"].splitlines() if "macro-F1" in line]
    assert [next(w for w in row if w in f1) for row in rows] == sorted(f1, key=f1.get, reverse=True)
    bins = _agreement_bins(challenge)
    n_plurality = int((bins.reindex(cat["FileName"]) == "plurality").sum())
    assert f"{n_plurality} utterances of annotator agreement 'plurality' ({best})" in outputs["agreement"]


def f1_systems(challenge: Path) -> list[str]:
    return sorted(p.name for p in (challenge / "predictions").iterdir())


def test_the_background_thread_ends_when_its_work_is_done_so_figures_can_use_every_core(challenge, tmp_path):
    """An explorer's prefetch thread lives only while it has work: afterwards this process forks
    workers again (ser_diag.parallel never forks beside another thread), e.g. for ``figures``
    run in the same notebook."""
    import threading
    import time

    from ser_diag import parallel

    def background_ends() -> bool:
        deadline = time.monotonic() + 30
        while any(t.name.startswith("ser_diag-explore") for t in threading.enumerate()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    explorer = Explorer(challenge, challenge / "predictions", n_boot=N_BOOT)   # prefetches in the background
    assert explorer.engine.prefetch(("probe",), lambda: 1) is not None          # a job: a thread
    explorer.wait_prefetch()
    assert background_ends()
    assert parallel.workers_for(2, 10) == 2
    explorer.set(view="binned_EmoVal")   # new jobs start a new thread, which ends again
    assert explorer.figure() is not None
    explorer.wait_prefetch()
    assert background_ends() and parallel.workers_for(2, 10) == 2
