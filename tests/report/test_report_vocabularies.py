"""Issue 22: the report on any corpus' vocabulary: the corpus named, sections and tables by its
class and attribute names, the sections it cannot have left out with one stated line each
(tables from :func:`vocabulary_frames.translated_diagnostics`, small and fast)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import pytest

from vocabulary_frames import translated_diagnostics

from ser_diag.diagnostics import Diagnostics, build_figures
from ser_diag.report import SECTIONS, render_html, sections_of, write_report_from
from ser_diag.vocabulary import CREMA_D, IEMOCAP


class _Page(HTMLParser):
    """Section ids and headings (h2) of a report page."""

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.h2, self._in_h2 = [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.ids.append(attrs.get("id"))
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data)


def _page(diag: Diagnostics, draw: bool = False) -> tuple[str, _Page]:
    """The page of ``diag`` (``draw``: with its figures; else without, which is quicker)."""
    figures = build_figures(diag) if draw else {}
    try:
        text = render_html(diag, figures, list(diag.tables))
    finally:
        for fig in figures.values():
            plt.close(fig)
    return text, _Page(text)


@pytest.fixture(scope="module")
def iemocap():
    return translated_diagnostics(IEMOCAP)


def test_report_names_the_corpus_and_its_attributes(iemocap):
    text, page = _page(iemocap)
    assert page.ids == list(SECTIONS)
    assert page.h2[3:6] == ["Fig. 3b - binned arousal", "Fig. 3c - binned valence", "Fig. 3d - binned dominance"]
    assert "<dt>corpus</dt><dd>iemocap: 4 classes (Neutral, Happiness, Sadness, Anger); arousal 1-5, " \
           "valence 1-5, dominance 1-5</dd>" in text
    assert "<header><h1>ser_diag - speech emotion recognition diagnostics</h1><p>iemocap: 3 systems" in text
    for header in ("F1 Neutral", "F1 Happiness", "F1 Anger", "CCC arousal", "CCC valence"):
        assert f">{header}</th>" in text
    assert "EmoAct" not in text and ">F1 A<" not in text
    assert re.search(r"Per true bin \([^)]*, arousal\)", text)


def test_report_drops_what_the_corpus_cannot_have(tmp_path):
    crema = translated_diagnostics(CREMA_D, speakers=False, gender=False)
    assert list(sections_of(crema)) == ["settings", "metrics", "fig3a", "fig4", "beyond", "tables"]
    index = write_report_from(crema, tmp_path / "report")
    text = index.read_text()
    page = _Page(text)
    assert page.ids == list(sections_of(crema))
    notes = re.findall(r"<li>(.*?)</li>", text.split('<ul class="notes">')[1].split("</ul>")[0])
    assert sum("has no dimensional attributes" in n for n in notes) == 1
    assert sum("no file has a known gender" in n for n in notes) == 1
    assert sum("no file has a known speaker" in n for n in notes) == 1
    assert "Task 2" not in text and "CCC arousal" not in text
    assert text.count("<figure>") >= 2 and "Confusion of" in text
    assert (tmp_path / "report" / "tables" / "confusion.csv").exists()


def test_report_keeps_the_speaker_section_without_gender():
    diag = translated_diagnostics(IEMOCAP, gender=False)
    assert "bias_audit" in sections_of(diag)
    text, _ = _page(diag)
    assert text.count("no file has a known gender") == 1
    assert "Gender gaps, all systems" not in text
