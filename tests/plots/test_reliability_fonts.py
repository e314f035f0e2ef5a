"""Names the figure font cannot draw (issue 10): a fallback font where one has the glyph, else
transliterated in the figure, the real name kept in the tables; never a "Glyph missing" box."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import seaborn as sns
from matplotlib import font_manager, ft2font

from ser_diag.cli import main
from ser_diag.plots import _style
from ser_diag.plots._style import displayable, readable_text, save_figure

CJK = "系统"  # no font of a default matplotlib install has these
SCRIPT_G = "\u210a"  # in STIXGeneral (ships with matplotlib), not in DejaVu Sans


def charmap(family: str) -> set[int]:
    return set(ft2font.FT2Font(font_manager.findfont(family, fallback_to_default=False)).get_charmap())


def drawn_texts(fig) -> list[str]:
    """Every text the renderer draws, tick labels included."""
    fig.canvas.draw()
    texts = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    for ax in fig.axes:
        texts += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    return [t for t in texts if t]


def glyph_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "Glyph" in str(w.message)]


def cjk_figure():
    fig, ax = plt.subplots()
    sns.barplot(x=[f"{CJK}_top", "baseline"], y=[0.4, 0.3], ax=ax)  # categorical tick labels
    ax.plot([0, 1], [0.1, 0.2], label=f"sys {CJK}")
    ax.legend()
    ax.set_yticks([0.1, 0.3], [f"{CJK} low", "high"])  # fixed tick labels
    ax.set_title(f"CCC of {CJK}_top {SCRIPT_G}")
    return fig, ax


def test_a_glyph_a_fallback_font_has_is_drawn_with_it(tmp_path):
    if ord(SCRIPT_G) in charmap("DejaVu Sans") or ord(SCRIPT_G) not in charmap("STIXGeneral"):
        pytest.fail("test premise: U+210A is in STIXGeneral only")
    assert "STIXGeneral" in _style.figure_fonts()
    assert list(matplotlib.rcParams["font.family"]) == list(_style.figure_fonts())
    fig, ax = plt.subplots()
    ax.set_title(f"slope {SCRIPT_G}")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        save_figure(fig, tmp_path, "fallback")
    plt.close(fig)
    assert glyph_warnings(record) == []
    assert ax.get_title() == f"slope {SCRIPT_G}"  # drawn from the fallback font, not replaced


def test_a_glyph_no_font_has_is_transliterated_in_every_text_of_the_figure(tmp_path):
    assert not any(ord(c) in _style._covered() for c in CJK), "test premise: no CJK font installed"
    fig, _ = cjk_figure()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        paths = save_figure(fig, tmp_path, "cjk")
        texts = drawn_texts(fig)
    plt.close(fig)
    assert glyph_warnings(record) == [] and all(p.stat().st_size > 1000 for p in paths)
    assert not any(c in text for text in texts for c in CJK), texts
    shown = displayable(CJK)
    assert shown and shown.isascii()
    for expected in (f"{shown}_top", f"sys {shown}", f"{shown} low", f"CCC of {shown}_top {SCRIPT_G}"):
        assert expected in texts, (expected, texts)


def test_without_matplotlib_fallback_the_same_figure_warns(tmp_path):
    """The check above can fail: unprepared, matplotlib warns about the missing glyphs."""
    fig, _ = cjk_figure()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fig.savefig(tmp_path / "raw.png")
    plt.close(fig)
    assert glyph_warnings(record)


def test_transliteration_with_and_without_anyascii(monkeypatch):
    import anyascii  # noqa: F401  (a dependency: transliterates names no font can draw)
    assert displayable(f"{CJK}_top") == "XiTong_top"
    assert displayable("plain name 1") == "plain name 1"
    monkeypatch.setitem(sys.modules, "anyascii", None)  # not installed
    assert displayable(f"{CJK}_top") == "U+7CFBU+7EDF_top"


def test_report_figures_transliterate_too():
    from ser_diag.report.markup import _figure_markup

    fig, _ = cjk_figure()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        markup = _figure_markup(fig, "CJK system")
    plt.close(fig)
    assert glyph_warnings(record) == [] and CJK not in markup


@pytest.mark.slow
def test_figures_of_a_cjk_system_name_keep_the_name_in_tables(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "sim"), "--n", "200", "--systems", "2", "-q"]) == 0
    predictions = tmp_path / "sim" / "predictions"
    (predictions / "sys02_top").rename(predictions / f"{CJK}_top")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        code = main(["figures", "--labels", str(tmp_path / "sim"), "--predictions", str(predictions),
                     "--out", str(tmp_path / "figs"), "--bootstrap", "5", "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Glyph" not in err and glyph_warnings(record) == []
    tables = [pd.read_csv(p).astype(str) for p in (tmp_path / "figs" / "tables").glob("*.csv")]
    assert any((t == f"{CJK}_top").any().any() for t in tables)  # the real name in the tables
    assert len(list((tmp_path / "figs").glob("*.png"))) >= 5
