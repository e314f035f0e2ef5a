"""The explorer as a person uses it: JupyterLab on 127.0.0.1 (a free port, a token), notebook 01
opened and run in Debian's headless chromium (driven over CDP, :mod:`chromium_cdp`), a cell of the
clickable confusion matrix clicked, the listing checked against the files computed here with
pandas; then the view changed and the old listing checked gone.

Screenshots are written to the test's tmp folder (and copied to ``$SER_DIAG_SCREENSHOTS``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from chromium_cdp import Chromium

from ser_diag.simulate import simulate_challenge

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def lab(tmp_path):
    """JupyterLab serving ``tmp_path/root`` with notebook 01 pointed at a simulated challenge."""
    challenge = simulate_challenge(tmp_path / "challenge", seed=7, n_systems=3, n=500)
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "01_explore_results.ipynb", as_version=4)
    params = nb.cells[1]
    assert "parameters" in params.metadata.get("tags", [])
    params.source += f"\nDATA_DIR = {str(challenge)!r}\nN_BOOT = 20\n"
    nbformat.write(nb, root / "01_explore_results.ipynb")
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), MPLBACKEND="Agg")
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()
                raise RuntimeError("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
            time.sleep(0.3)
    yield dict(url=f"{base}/lab/tree/01_explore_results.ipynb?token={token}&reset", challenge=challenge)
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def _expected(challenge: Path, system: str, true: str, pred: str) -> list[str]:
    labels = pd.read_csv(challenge / "Labels" / "labels_consensus.csv")
    labels = labels[labels["Split_Set"] == "Development"]
    preds = pd.read_csv(challenge / "predictions" / system / "categorical.csv")
    joined = labels.merge(preds, on="FileName", suffixes=("_true", "_pred"))
    joined = joined[joined["EmoClass_true"].isin(list("ASHUFDCN"))]
    if true is not None:
        joined = joined[joined["EmoClass_true"] == true]
    if pred is not None:
        joined = joined[joined["EmoClass_pred"] == pred]
    return joined["FileName"].tolist()


LISTED = "[...document.querySelectorAll('.ser-listing td.file')].map(e => e.textContent)"


@pytest.mark.slow
def test_click_a_cell_lists_its_files_and_a_view_change_clears_them(lab, tmp_path):
    started = time.monotonic()
    with Chromium(tmp_path / "profile", width=1400, height=1000) as browser:
        browser.open(lab["url"], timeout=60)
        panel = "[...jupyterapp.shell.widgets('main')].find(w => w.sessionContext)"
        browser.wait_for(f"(() => {{ const p = window.jupyterapp && {panel}; "
                         "return p && p.sessionContext.kernelDisplayStatus === 'idle'; })()", timeout=90)
        browser.evaluate(f"(() => {{ jupyterapp.shell.activateById({panel}.id); "
                         "return jupyterapp.commands.execute('notebook:run-all-cells').then(() => true); })()")
        # the explorer's clickable matrix appears once the last cell ran
        try:
            browser.wait_for("document.querySelectorAll('.ser-cell').length === 64", timeout=150)
        except Exception:
            browser.screenshot(tmp_path / "explorer_failed.png")
            errors = browser.evaluate("[...document.querySelectorAll('.jp-RenderedText[data-mime-type="
                                      "\"application/vnd.jupyter.stderr\"], .jp-OutputArea-output')]"
                                      ".map(e => e.textContent.slice(0, 400))")
            raise AssertionError(f"the explorer did not appear; outputs: {errors}")
        browser.wait_for("document.querySelector('.ser-listing') !== null", timeout=30)
        assert "No cell chosen" in browser.evaluate("document.querySelector('.ser-listing').textContent")
        browser.evaluate("document.querySelector('.ser-cell-F-A').scrollIntoView({block: 'center'})")
        browser.evaluate("document.querySelector('.ser-cell-F-A').click(), true")
        browser.wait_for("document.querySelector('.ser-listing[data-cell=\"F|A\"]') !== null", timeout=30)
        title = browser.evaluate("document.querySelector('.ser-listing .title').textContent")
        match = re.match(r"(\d+) utterances with true class Fear and predicted class Anger \((\S+)\)", title)
        assert match, title
        expected = _expected(lab["challenge"], match.group(2), "F", "A")
        listed = browser.evaluate(LISTED)
        assert int(match.group(1)) == len(expected)
        assert listed and set(listed) <= set(expected) and len(listed) == min(len(expected), 20)
        assert browser.evaluate("document.querySelector('.ser-cell-F-A').classList.contains('ser-selected')")
        assert browser.evaluate("document.querySelectorAll('.ser-selected').length") == 1
        browser.evaluate("document.querySelector('.ser-listing').scrollIntoView({block: 'end'})")
        browser.screenshot(tmp_path / "explorer_cell_clicked.png")
        browser.evaluate("document.querySelector('.ser-cell').closest('.widget-vbox').scrollIntoView({block: 'start'})")
        browser.screenshot(tmp_path / "explorer_figure_selected.png")

        # change the view with its dropdown, as a person does: the old listing must go
        browser.evaluate("""(() => {
            const text = o => o.textContent.replace(/\u00a0/g, ' ');   // widgets label with nbsp
            const select = [...document.querySelectorAll('.widget-dropdown select')]
                .find(s => [...s.options].some(o => text(o) === 'regression to the mean'));
            select.selectedIndex = [...select.options].findIndex(o => text(o) === 'regression to the mean');
            select.dispatchEvent(new Event('change', {bubbles: true}));
            return true; })()""")
        browser.wait_for("document.querySelector('.ser-listing[data-view=\"regression_to_mean\"]') !== null",
                         timeout=60)
        assert browser.evaluate(LISTED) == []
        text = browser.evaluate("document.querySelector('.ser-listing').textContent")
        assert "no cells to list" in text and not any(name in text for name in listed)
        assert browser.evaluate("document.querySelectorAll('.ser-cell').length") == 0
        browser.screenshot(tmp_path / "explorer_view_changed.png")

        # a beyond-the-paper view: per-podcast metrics; clicking a podcast lists its files
        _choose_view(browser, "per-podcast metrics")
        browser.wait_for("document.querySelectorAll('.ser-group').length > 0", timeout=60)
        assert browser.evaluate("document.querySelector('.ser-tables table') !== null")
        assert browser.evaluate(LISTED) == []
        browser.evaluate("document.querySelector('.ser-group').scrollIntoView({block: 'center'})")
        browser.evaluate("document.querySelector('.ser-group').click(), true")
        browser.wait_for("(() => { const l = document.querySelector('.ser-listing[data-view=\"podcasts\"]');"
                         " return l !== null && !l.dataset.cell.startsWith('None'); })()", timeout=30)
        podcast = browser.evaluate("document.querySelector('.ser-listing[data-view=\"podcasts\"]')"
                                   ".dataset.cell.split('|')[0]")
        title = browser.evaluate("document.querySelector('.ser-listing .title').textContent")
        match = re.match(r"(\d+) utterances of podcast (\d+) \((\S+)\)", title)
        assert match and match.group(2) == podcast, title
        expected = [f for f in _expected(lab["challenge"], match.group(3), None, None)
                    if f.startswith(f"MSP-PODCAST_{podcast}_")]
        listed = browser.evaluate(LISTED)
        assert int(match.group(1)) == len(expected) and listed and set(listed) <= set(expected)
        assert browser.evaluate("document.querySelectorAll('.ser-group.ser-selected').length") == 1
        browser.screenshot(tmp_path / "explorer_podcast_clicked.png")
    assert time.monotonic() - started < 300


def _choose_view(browser, name: str) -> None:
    """Pick a view in the view dropdown by its human name, as a person does."""
    browser.evaluate("""(() => {
        const text = o => o.textContent.replace(/\u00a0/g, ' ');
        const select = [...document.querySelectorAll('.widget-dropdown select')]
            .find(s => [...s.options].some(o => text(o) === '%s'));
        select.selectedIndex = [...select.options].findIndex(o => text(o) === '%s');
        select.dispatchEvent(new Event('change', {bubbles: true}));
        return true; })()""" % (name, name))
