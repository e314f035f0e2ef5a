"""The HTML report, checked as a person opens it: in Debian's chromium, headless, from file://.

Network check (no request leaves the page): chromium writes its network log
(``--log-net-log``); every URL request a document starts carries that document as initiator,
while the browser's own service traffic (component updater, network time, account check) is
logged with initiator "not an origin". A page request to anything but ``file:``/``data:`` is a
leak. ``--host-resolver-rules`` makes every host unresolvable, so the test itself never reaches
the network. The detector is validated on a control page that does load a remote image and
stylesheet. Independently, the HTML itself is scanned for any absolute URL in ``src``/``href``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ser_diag.diagnostics import build_figures, compute_diagnostics
from ser_diag.errors import InputError
from ser_diag.report import SECTIONS, render_html, write_report, write_report_from
from ser_diag.schema import SYNTHETIC_BANNER
from ser_diag.simulate import simulate_challenge

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
N_BOOT = 40


@pytest.fixture(scope="module")
def challenge(tmp_path_factory) -> Path:
    return simulate_challenge(tmp_path_factory.mktemp("sim") / "challenge", seed=3, n_systems=3, n=600)


@pytest.fixture(scope="module")
def report(challenge, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    index = write_report(challenge, challenge / "predictions", out, n_boot=N_BOOT, seed=1)
    assert index == out / "index.html"
    return index


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.urls, self.tags = set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name == "id":
                self.ids.add(value)
            if name in ("src", "href", "xlink:href", "action", "poster", "srcset", "data"):
                self.urls.append((tag, name, value or ""))


def _parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    return parser


def _chromium(url: str, profile: Path, *extra: str, timeout: int = 90) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", *extra, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def _document_requests(net_log: Path) -> list[str]:
    """URLs (other than file:/data:) requested by a document, from a chromium net log."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] == start and "url" in params and params.get("initiator") != "not an origin":
            if not params["url"].startswith(("file:", "data:")):
                urls.append(params["url"])
    return urls


# --------------------------------------------------------------------------- static HTML

def test_every_section_and_table_is_there(report):
    text = report.read_text(encoding="utf-8")
    parsed = _parse(text)
    assert set(SECTIONS) <= parsed.ids
    for table_id in ("metrics_categorical", "metrics_attributes", "minority_destinations", "per_bin_EmoAct",
                     "shrinkage", "recalibration", "gender_gaps", "worst_speakers", "fusion_curve"):
        assert table_id in parsed.ids, table_id
    assert SYNTHETIC_BANNER in text
    assert "ddof=0" in text and "utterances" in text          # CCC convention and resampling unit
    assert text.count("<svg") + text.count("data:image/png;base64") >= 10   # figures inline
    assert "ci_low" in text or "[" in text


def test_metric_cells_show_the_diagnostics_numbers(report, challenge):
    """The metrics table reads the CSV written beside it (same numbers, formatted)."""
    metrics = pd.read_csv(report.parent / "tables" / "metrics.csv")
    row = metrics[(metrics["metric"] == "macro_f1")].iloc[0]
    cell = f"{row['estimate']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    assert cell in report.read_text(encoding="utf-8")
    assert set(metrics["system"]) == {p.name for p in (challenge / "predictions").iterdir()}


def test_no_absolute_url_and_only_existing_relative_links(report):
    text = report.read_text(encoding="utf-8")
    parsed = _parse(text)
    assert "link" not in parsed.tags            # no external stylesheet, font or preload
    assert not re.search(r"(?i)\b(src|href)\s*=\s*[\"']?\s*(https?:)?//", text)
    assert not re.search(r"(?i)@import|url\(\s*[\"']?(https?:)?//", text)
    csv_links = []
    for tag, name, value in parsed.urls:
        if value.startswith(("#", "data:")):
            continue
        assert tag == "a" and name == "href" and value.startswith("tables/") and value.endswith(".csv"), value
        csv_links.append(value)
    assert len(csv_links) >= 10
    for link in csv_links:
        assert (report.parent / link).is_file(), link
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_bad_input_writes_nothing(challenge, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(challenge / "predictions", broken)
    first = sorted(broken.iterdir())[0] / "categorical.csv"
    lines = first.read_text().splitlines()
    fields = lines[3].split(",")
    fields[1] = "Q"                               # an unknown class code on line 4
    lines[3] = ",".join(fields)
    first.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    with pytest.raises(InputError):
        write_report(challenge, broken, out, n_boot=5)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [broken]   # no staging folder left behind


# --------------------------------------------------------------------------- reproducible, from diagnostics

@pytest.mark.slow
def test_two_runs_are_byte_identical_and_diagnostics_can_be_passed(challenge, report, tmp_path):
    """Same inputs and seed: the same bytes, whether the report computes the diagnostics or is
    given them (the demo computes them once for figures and report)."""
    again = write_report(challenge, challenge / "predictions", tmp_path / "again", n_boot=N_BOOT, seed=1)
    assert again.read_bytes() == report.read_bytes()
    diag = compute_diagnostics(challenge, challenge / "predictions", n_boot=N_BOOT, seed=1)
    given = write_report_from(diag, tmp_path / "given")
    assert given.read_bytes() == report.read_bytes()
    via_keyword = write_report(None, None, tmp_path / "keyword", diagnostics=diag)
    assert via_keyword.read_bytes() == report.read_bytes()
    for name in ("metrics", "fusion_curve", "speaker_metrics"):
        assert (tmp_path / "given" / "tables" / f"{name}.csv").read_bytes() == \
            (report.parent / "tables" / f"{name}.csv").read_bytes()
    assert "<dc:date>" not in report.read_text(encoding="utf-8")


def test_the_page_renders_without_computing(challenge, monkeypatch):
    """render_html formats what the diagnostics hold: every analysis function raises meanwhile."""
    import ser_diag.analysis as analysis_package
    import pkgutil
    import importlib

    diag = compute_diagnostics(challenge, challenge / "predictions", n_boot=10, seed=1)
    figures = build_figures(diag)
    for info in pkgutil.iter_modules(analysis_package.__path__):
        module = importlib.import_module(f"ser_diag.analysis.{info.name}")
        for name, value in vars(module).items():
            if callable(value) and getattr(value, "__module__", "") == module.__name__ and not name.startswith("_"):
                monkeypatch.setattr(module, name, _forbidden)
    for module_name in ("ser_diag.resampling", "ser_diag.metrics"):
        module = importlib.import_module(module_name)
        for name in ("bootstrap_metrics", "bootstrap", "ccc", "macro_f1"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, _forbidden)
    page = render_html(diag, figures, list(diag.tables))
    assert "fusion_curve" in page and "worst_speakers" in page


def _forbidden(*args, **kwargs):
    raise AssertionError("the report computed instead of formatting")


def test_report_without_intervals_and_its_human_tables(challenge, tmp_path):
    index = write_report(challenge, challenge / "predictions", tmp_path / "none", n_boot=0)
    text = index.read_text(encoding="utf-8")
    assert "none (0 bootstrap resamples)" in text
    assert not re.search(r"\bnan\b", re.sub(r"<svg.*?</svg>", "", text, flags=re.S).lower())
    # the fusion table labels the baseline row as the baseline, never as K = number of systems
    rows = re.findall(r"<tr>(.*?)</tr>", text[text.index('id="fusion_curve"'):].split("</table>")[0])
    cells = [c for c in (re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows) if c]
    baseline = [c for c in cells if c[2] == "baseline system"]
    assert baseline and all(c[3] == "baseline" and c[5].endswith("baseline") for c in baseline)
    assert not any(c[2] == "baseline" for c in cells)
    # worst speakers: at most a third of the speakers of the task (focus system)
    speakers = pd.read_csv(tmp_path / "none" / "tables" / "speaker_metrics.csv")
    worst = text[text.index('id="worst_speakers"'):].split("</table>")[0]
    for task in ("categorical", "attributes"):
        n_speakers = speakers[speakers["task"] == task]["SpkrID"].nunique()
        shown = len(re.findall(rf"<tr><td class=\"text\">{task}</td>", worst))
        assert 0 < shown <= n_speakers // 3, (task, shown, n_speakers)
    for machine in ("ccc_EmoAct", "macro_f1", "mean_pred", "true_bin", "n_utterances"):
        assert f">{machine}<" not in text, machine       # headers people read use human names


# --------------------------------------------------------------------------- in the browser

def test_renders_in_chromium_without_network(report, tmp_path):
    shot = tmp_path / "report.png"
    result = _chromium(report.as_uri(), tmp_path / "profile-shot", f"--screenshot={shot}",
                       "--window-size=1280,4000", "--hide-scrollbars")
    assert shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (4000, 1280)
    assert pixels.std() > 20                                  # not blank
    assert (pixels < 128).mean() > 0.02                       # text and figures drawn
    assert len(np.unique(pixels)) > 50

    net_log = tmp_path / "net.json"
    dom = _chromium(report.as_uri(), tmp_path / "profile-dom", f"--log-net-log={net_log}",
                    "--virtual-time-budget=3000", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = _parse(dom.stdout)
    assert set(SECTIONS) <= rendered.ids
    assert _document_requests(net_log) == []


def test_no_sideways_scroll_at_1024_and_1600(report, tmp_path):
    """The page fits the window (wide tables scroll inside their own box) and every nav link is
    on screen at 1024 and 1600 px; screenshots kept (SER_DIAG_SCREENSHOTS=folder keeps copies)."""
    from chromium_cdp import Chromium

    with Chromium(tmp_path / "profile-cdp") as browser:
        for width in (1024, 1600):
            browser.open(report.as_uri(), width=width, height=900)
            assert browser.evaluate("document.documentElement.scrollWidth <= innerWidth"), width
            right = browser.evaluate("Math.max(...[...document.querySelectorAll('nav a')]"
                                     ".map(a => a.getBoundingClientRect().right))")
            assert right <= width, (width, right)
            assert browser.evaluate("document.querySelectorAll('nav a').length") == len(SECTIONS)
            shot = browser.screenshot(tmp_path / f"report_{width}px.png")
            pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
            assert pixels.shape == (900, width) and pixels.std() > 20


def test_network_detector_sees_a_leaking_page(tmp_path):
    """Control: the same net-log check flags a page that loads a remote image and stylesheet."""
    page = tmp_path / "leak.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="stylesheet" href="https://fonts.example.org/a.css">'
                    '</head><body><img src="http://cdn.example.invalid/x.png"></body></html>')
    net_log = tmp_path / "net.json"
    _chromium(page.as_uri(), tmp_path / "profile", f"--log-net-log={net_log}", "--virtual-time-budget=3000",
              "--dump-dom")
    assert sorted(_document_requests(net_log)) == ["http://cdn.example.invalid/x.png",
                                                   "https://fonts.example.org/a.css"]


def test_clicking_a_header_sorts_the_table(report, tmp_path):
    """Run the page's own script in chromium: click the macro-F1 header, read the row order."""
    html = report.read_text(encoding="utf-8")
    probe = ("<script>var t=document.getElementById('metrics_categorical');"
             "var h=Array.prototype.slice.call(t.tHead.rows[0].cells);"
             "var col=h.findIndex(function(c){return c.textContent.trim()==='macro-F1';});"
             "h[col].click();"
             "document.body.setAttribute('data-order',Array.prototype.map.call(t.tBodies[0].rows,"
             "function(r){return r.cells[0].textContent;}).join(','));</script></body>")
    page = tmp_path / "index.html"
    page.write_text(html.replace("</body>", probe, 1), encoding="utf-8")
    dom = _chromium(page.as_uri(), tmp_path / "profile", "--virtual-time-budget=2000", "--dump-dom")
    order = re.search(r'data-order="([^"]*)"', dom.stdout).group(1).split(",")
    metrics = pd.read_csv(report.parent / "tables" / "metrics.csv")
    scores = metrics[metrics["metric"] == "macro_f1"].sort_values("estimate")
    assert order == scores["system"].tolist()       # first click: ascending


# --------------------------------------------------------------------------- command line

@pytest.mark.slow
def test_cli_writes_the_report_and_fails_cleanly(challenge, tmp_path):
    out = tmp_path / "cli_out"
    ok = subprocess.run([sys.executable, "-m", "ser_diag", "report", "--labels", str(challenge),
                         "--predictions", str(challenge / "predictions"), "--out", str(out),
                         "--bootstrap", "20"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (out / "index.html").is_file() and (out / "tables" / "metrics.csv").is_file()

    bad_out = tmp_path / "bad_out"
    bad = subprocess.run([sys.executable, "-m", "ser_diag", "report", "--labels", str(tmp_path / "missing"),
                          "--predictions", str(challenge / "predictions"), "--out", str(bad_out),
                          "--bootstrap", "20"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    assert not bad_out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli_out"]
