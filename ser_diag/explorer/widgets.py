"""The explorer's ipywidgets face, the only module that imports ipywidgets (inside the classes,
so importing it needs none): controls that copy values onto the
:class:`~ser_diag.explorer.state.ExplorerState` of an :class:`~ser_diag.explorer.Explorer` and
areas that show what the explorer answers for the state. It takes the explorer it is given and
imports nothing above it (:meth:`ser_diag.explorer.Explorer.show` imports this module).

Clickable figure: in the confusion and binned views the matrix is drawn as a grid of
ipywidgets buttons (:class:`CellGrid`), one per cell, coloured with the figure's colormap and
labelled ``share · count``; clicking a cell (or Tab to it and Enter) selects it and outlines it.
Chosen over ipympl (``%matplotlib widget``) and plotly's FigureWidget because it needs nothing
beyond ipywidgets (already required, bundled with JupyterLab 4's widget manager, works offline),
maps clicks to cells without pixel arithmetic, and is keyboard accessible. The library's own
matplotlib figure is shown beside it when comparing two systems, and for every other view.

Beyond-the-paper views (leaderboard, win probability, agreement, podcasts, durations): the
library's figure, then its tables with headers in words (:func:`tables_html`); in the agreement
and podcast views a row of buttons (:class:`GroupButtons`, one per agreement bin or per podcast
of the figure) lists a bin's or podcast's files in the same rows area as a cell's. A view
without data (no ``labels_detailed.csv``, no ``Audios/``) shows one line saying so, nothing else.

Rows: one HTML table per page (:data:`PAGE_SIZE` rows) with wrapped full transcripts, compact
votes (``F 6 · U 1``) and an audio player per row; audio is embedded only for the rows of the
visible page (``preload="none"``). Every area is replaced as a whole from the current state on
each change (no appended output), so nothing of a previous state can stay on screen.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.explorer.listing import column_name
from ser_diag.explorer.state import BEYOND_VIEWS, BIN_SCHEMES, GROUP_VIEWS, is_cell_view, view_name
from ser_diag.names import human_name
from ser_diag.schema import ATTRIBUTE_NAMES, CLASS_NAMES, SYNTHETIC_BANNER

__all__ = ["ExplorerWidgets", "CellGrid", "GroupButtons", "PAGE_SIZE", "rows_html", "tables_html"]

#: Rows per page of the listing.
PAGE_SIZE = 20
_NONE = "(none)"
_ANY = "(any)"
_AUDIO_MAX_BYTES = 4_000_000
_CSS = """<style>
.ser-listing table{border-collapse:collapse;font-size:12.5px;width:100%;table-layout:auto}
.ser-listing th{background:#eef1f6;text-align:left;padding:3px 6px;position:sticky;top:0}
.ser-listing td{border-top:1px solid #ddd;padding:3px 6px;vertical-align:top}
.ser-listing td.nowrap,.ser-listing th.nowrap{white-space:nowrap}
.ser-listing td.transcript{white-space:normal;min-width:16em;max-width:40em;overflow-wrap:anywhere}
.ser-listing td.file{white-space:nowrap;font-family:monospace;font-size:12px}
.ser-listing audio{height:28px;width:190px}
.ser-listing .title{font-weight:600;margin:4px 0}
.ser-listing .message{color:#444;font-style:italic;margin:6px 0}
</style>"""


_TABLES_CSS = """<style>
.ser-tables table{border-collapse:collapse;font-size:12.5px;margin-bottom:10px}
.ser-tables th{background:#eef1f6;text-align:left;padding:3px 6px}
.ser-tables td{border-top:1px solid #ddd;padding:3px 6px;white-space:nowrap}
.ser-tables .title{font-weight:600;margin:6px 0 3px 0}
</style>"""


def _text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}"
    return str(value)


def _audio(path) -> str:
    if not path:
        return ""
    file = Path(path)
    if not file.is_file() or file.stat().st_size > _AUDIO_MAX_BYTES:
        return "" if not file.is_file() else "(file too large to embed)"
    kind = {".wav": "wav", ".mp3": "mpeg", ".flac": "flac", ".ogg": "ogg"}.get(file.suffix.lower(), "wav")
    data = base64.b64encode(file.read_bytes()).decode("ascii")
    return f'<audio controls preload="none" src="data:audio/{kind};base64,{data}"></audio>'


def rows_html(explorer, listing, page: int = 0, page_size: int = PAGE_SIZE) -> str:
    """The listing of one state as HTML: title, one page of rows (class names, compact votes,
    wrapped transcripts, audio players of the visible rows only) or the listing's message.
    The outer ``div`` carries the state it shows (``data-view``, ``data-cell``) and each file
    cell ``class="file"``."""
    s = listing.state
    cell = f"{s.cell_true}|{s.cell_pred}"
    head = (f'<div class="ser-listing" data-view="{html.escape(s.view)}" data-cell="{html.escape(cell)}" '
            f'data-disagree="{int(bool(s.disagree_only))}">')
    if listing.table is None:
        return f'{_CSS}{head}<div class="message">{html.escape(listing.message)}</div></div>'
    table = listing.table
    n = len(table)
    pages = max(1, -(-n // page_size))
    page = min(max(page, 0), pages - 1)
    shown = table.iloc[page * page_size:(page + 1) * page_size]
    columns = [c for c in table.columns if c not in ("Gender",)]
    header = "".join(
        f'<th class="{"nowrap" if c not in ("transcript",) else ""}">'
        f"{html.escape(column_name(c, s.system, s.compare_system))}</th>" for c in columns)
    body = []
    for _, row in shown.iterrows():
        cells = []
        for c in columns:
            value = row[c]
            if c == "audio":
                cells.append(f"<td>{_audio(value)}</td>")
                continue
            if c.startswith("EmoClass") and isinstance(value, str):
                value = CLASS_NAMES.get(value, value)
            if c.startswith("vote_share") or c == "P_pred":
                value = "" if pd.isna(value) else f"{100 * float(value):.0f}%"
            cls = "file" if c == "FileName" else "transcript" if c == "transcript" else "nowrap"
            cells.append(f'<td class="{cls}">{html.escape(_text(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    rows_note = f"rows {page * page_size + 1}-{page * page_size + len(shown)} of {n}" if n else "no files"
    return (f'{_CSS}{head}<div class="title">{html.escape(listing.title)}</div>'
            f'<div class="message">{rows_note}; page {page + 1} of {pages}</div>'
            f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


class CellGrid:
    """A clickable heatmap: one button per cell of :meth:`~ser_diag.explorer.Explorer.heatmap`,
    coloured like the figure; ``on_select(true_value, pred_value)`` is called on a click.
    :meth:`select` outlines the chosen cell. ``buttons[(true_value, pred_value)]`` holds the buttons."""

    def __init__(self, heatmap: dict, on_select, selected=(None, None)):
        import ipywidgets as w
        from matplotlib import colormaps
        from matplotlib.colors import to_hex

        from ser_diag.plots._style import MATRIX_CMAP

        cmap = colormaps[MATRIX_CMAP]
        share, count = heatmap["share"], heatmap["count"]
        k_rows, k_cols = share.shape
        self.buttons: dict = {}
        items = [w.HTML("<b>true ↓ · predicted →</b>")]
        items += [w.HTML(f"<div style='text-align:center;font-size:12px'>{html.escape(str(c))}</div>")
                  for c in heatmap["columns"]]
        for i in range(k_rows):
            items.append(w.HTML(f"<div style='text-align:right;font-size:12px;padding-right:4px'>"
                                f"{html.escape(str(heatmap['rows'][i]))}</div>"))
            for j in range(k_cols):
                value = share[i, j]
                t, p = heatmap["row_values"][i], heatmap["column_values"][j]
                colour = to_hex(cmap(0.0 if not np.isfinite(value) else float(value)))
                r, g, b = (int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5))
                text_colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                label = "-" if not np.isfinite(value) else f"{100 * value:.0f}% · {count[i, j]}"
                button = w.Button(description=label,
                                  tooltip=f"true {heatmap['rows'][i]}, predicted {heatmap['columns'][j]}: "
                                          f"{count[i, j]} files - click to list them",
                                  layout=w.Layout(width="auto", height="34px", margin="1px", padding="0"))
                button.style.button_color = colour
                button.style.text_color = text_colour
                button.add_class("ser-cell")
                button.add_class(f"ser-cell-{t}-{p}")
                button.on_click(lambda _, t=t, p=p: on_select(t, p))
                self.buttons[(t, p)] = button
                items.append(button)
        self.root = w.VBox([
            w.HTML(f"<b>{html.escape(heatmap['title'])}</b> - click a cell to list its files"),
            w.GridBox(items, layout=w.Layout(grid_template_columns=f"max-content repeat({k_cols}, minmax(58px, 86px))",
                                             grid_gap="0px", align_items="center")),
        ])
        self.select(*selected)

    def select(self, true_value, pred_value) -> None:
        for (t, p), button in self.buttons.items():
            chosen = (true_value is None or t == true_value) and (pred_value is None or p == pred_value) \
                and not (true_value is None and pred_value is None)
            button.layout.border = "3px solid #d62728" if chosen else "1px solid #ffffff"
            if chosen:
                button.add_class("ser-selected")
            else:
                button.remove_class("ser-selected")


def tables_html(tables: list[tuple[str, pd.DataFrame]]) -> str:
    """The tables of a beyond view (:meth:`~ser_diag.explorer.Explorer.view_tables`), each under its title;
    numbers to 3 decimals, booleans as yes/no."""
    parts = []
    for title, table in tables:
        shown = table.copy()
        for column in shown.columns:
            if shown[column].dtype == bool:
                shown[column] = shown[column].map({True: "yes", False: "no"})
        parts.append(f"<div class='title'>{html.escape(title)}</div>"
                     + shown.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.3f}"))
    return f"{_TABLES_CSS}<div class='ser-tables'>{''.join(parts)}</div>"


class GroupButtons:
    """One toggle-like button per agreement bin or podcast (``options``: ``(label, value)``);
    ``on_select(value)`` on a click; :meth:`select` outlines the chosen one."""

    def __init__(self, options, on_select, selected=None, title: str = ""):
        import ipywidgets as w

        self.buttons: dict = {}
        for label, value in options:
            button = w.Button(description=label, tooltip=f"list the files of {label}",
                              layout=w.Layout(width="auto", margin="1px"))
            button.add_class("ser-group")
            button.on_click(lambda _, value=value: on_select(value))
            self.buttons[value] = button
        self.root = w.VBox([w.HTML(f"<b>{html.escape(title)}</b>"),
                            w.HBox(list(self.buttons.values()), layout=w.Layout(flex_flow="row wrap"))])
        self.select(selected)

    def select(self, value) -> None:
        for key, button in self.buttons.items():
            chosen = value is not None and key == value
            button.layout.border = "3px solid #d62728" if chosen else "1px solid #cccccc"
            button.button_style = "info" if chosen else ""
            if chosen:
                button.add_class("ser-selected")
            else:
                button.remove_class("ser-selected")


class ExplorerWidgets:
    """Widget layer only: copies widget values onto the explorer's state and shows what the
    Explorer answers for it. ``root`` is the VBox to display."""

    def __init__(self, explorer, page_size: int = PAGE_SIZE):
        import ipywidgets as w

        self.ex, self.w, self.page_size, self.page = explorer, w, page_size, 0
        s = explorer.state
        self.controls = {
            "system": w.Dropdown(options=explorer.systems, value=s.system, description="system"),
            "compare_system": w.Dropdown(options=[_NONE] + explorer.systems,
                                         value=s.compare_system or _NONE, description="compare"),
            "split": w.Dropdown(options=explorer.splits, value=s.split, description="split"),
            "group_column": w.Dropdown(options=[_NONE] + explorer.engine.group_columns(),
                                       value=s.group_column or _NONE, description="group by"),
            "group_value": w.Dropdown(options=[_NONE], value=_NONE, description="group"),
            "view": w.Dropdown(options=[(view_name(v, explorer.vocabulary), v) for v in explorer.views], value=s.view, description="view"),
            "bins": w.Dropdown(options=[(f"{b} bins", b) for b in BIN_SCHEMES], value=s.bins, description="bins"),
        }
        self.cell = {
            "cell_true": w.Dropdown(options=[_ANY], value=_ANY, description="true"),
            "cell_pred": w.Dropdown(options=[_ANY], value=_ANY, description="predicted"),
        }
        self.disagree = w.Checkbox(value=s.disagree_only, description="only where the two systems disagree",
                                   indent=False)
        self.sort = w.Dropdown(options=[("(file order)", _NONE)], value=_NONE, description="sort by")
        self.descending = w.ToggleButton(value=not s.ascending, description="descending", icon="sort")
        self.previous, self.next = w.Button(description="◀ previous"), w.Button(description="next ▶")
        self.export_path = w.Text(value="cell_utterances.csv", description="CSV")
        self.export = w.Button(description="export rows")
        self.message = w.HTML()
        self.figure_area = w.VBox()
        self.metrics = w.HTML()
        self.rows = w.HTML()
        self.rows.add_class("ser-rows")
        self.grid: CellGrid | None = None
        self.groups: GroupButtons | None = None
        self._grids: dict = {}        # clickable matrices built so far, by view, system, bins, split, group
        self._groups: dict = {}       # bin / podcast buttons built so far
        self._tables: dict = {}       # beyond views' tables shown so far
        banner = w.HTML(f"<b style='color:#a00'>{html.escape(SYNTHETIC_BANNER)}</b>") if explorer.synthetic \
            else w.HTML()
        for widget in list(self.controls.values()) + list(self.cell.values()) + [self.sort]:
            widget.layout = w.Layout(width="250px")
            widget.style.description_width = "70px"
        self._value_of: dict = {}     # dropdown label value -> state value (group, cells)
        for name, widget in {**self.controls, **self.cell}.items():
            widget.observe(lambda change, name=name: self.on_change(name, change["new"]), names="value")
        self.disagree.observe(lambda change: self.on_change("disagree_only", change["new"]), names="value")
        self.sort.observe(lambda change: self.on_change("sort_by", change["new"]), names="value")
        self.descending.observe(lambda change: self.on_change("ascending", not change["new"]), names="value")
        self.previous.on_click(lambda _: self.turn(-1))
        self.next.on_click(lambda _: self.turn(+1))
        self.export.on_click(lambda _: self.on_export())
        controls = list(self.controls.values())
        tabs = w.Tab(children=[self.figure_area, self.metrics])
        tabs.set_title(0, "figure")
        tabs.set_title(1, "metrics")
        self.root = w.VBox([
            banner, w.HBox(controls[:4], layout=w.Layout(flex_flow="row wrap")),
            w.HBox(controls[4:], layout=w.Layout(flex_flow="row wrap")),
            self.message, tabs,
            w.HBox([self.cell["cell_true"], self.cell["cell_pred"], self.disagree],
                   layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.sort, self.descending, self.previous, self.next, self.export_path, self.export],
                   layout=w.Layout(flex_flow="row wrap")),
            self.rows,
        ])
        self._syncing = False
        self.refresh()

    # ------------------------------------------------------------------ controls -> state
    def _state_value(self, name: str, value):
        if value in (_NONE, _ANY):
            return None
        if name in ("group_value", "cell_true", "cell_pred"):
            return self._value_of.get((name, value), value)
        return value

    def on_change(self, name: str, value) -> None:
        if self._syncing:
            return
        value = self._state_value(name, value)
        changes = {name: value}
        if name == "group_column":
            if value is not None:
                self.sync_options()      # a column alone filters nothing: wait for a value
                self.ex.prefetch_groups(value)   # meanwhile, compute each value's diagnostics
                return
            changes["group_value"] = None
        if name == "group_value":
            column = self._state_value("group_column", self.controls["group_column"].value)
            changes["group_column"] = None if value is None else column
        self.apply(**changes)

    def select_cell(self, true_value, pred_value) -> None:
        """What a click on the figure's cell does."""
        self.apply(cell_true=true_value, cell_pred=pred_value)

    def apply(self, **changes) -> None:
        """Set the state and refresh what depends on it (the figure only when it changes)."""
        before = self.ex.state
        try:
            self.ex.set(**changes)
            self.message.value = ""
        except ValueError as err:
            self.message.value = f"<span style='color:#a00'>{html.escape(str(err))}</span>"
            self.sync_options()
            return
        self.page = 0
        figure_fields = ("system", "compare_system", "split", "group_column", "group_value", "view", "bins")
        if any(getattr(before, f) != getattr(self.ex.state, f) for f in figure_fields):
            self.refresh()
        else:
            self.sync_options()
            if self.grid is not None:
                self.grid.select(self.ex.state.cell_true, self.ex.state.cell_pred)
            if self.groups is not None:
                self.groups.select(self.ex.state.cell_true)
            self.show_rows()

    def turn(self, step: int) -> None:
        self.page += step
        self.show_rows()

    # ------------------------------------------------------------------ state -> widgets
    def sync_options(self) -> None:
        """Options that depend on the state: group values, cell choices, sortable columns."""
        self._syncing = True
        try:
            state = self.ex.state
            column = self._state_value("group_column", self.controls["group_column"].value)
            values = self.ex.engine.group_values(column, state.split) if column is not None else []
            self._value_of = {("group_value", str(v)): v for v in values}
            self.controls["group_value"].options = [_NONE] + [str(v) for v in values]
            self.controls["group_value"].value = (str(state.group_value) if column is not None
                                                  and column == state.group_column
                                                  and state.group_value is not None else _NONE)
            for name in ("system", "split", "view", "bins"):
                self.controls[name].value = getattr(state, name)
            self.controls["compare_system"].value = state.compare_system or _NONE
            try:
                options = self.ex.cell_options()
            except ValueError:
                options = []
            for name, widget in self.cell.items():
                mine = [] if name == "cell_pred" and state.view in GROUP_VIEWS else options
                labels = [label for label, _ in mine]
                self._value_of.update({(name, label): value for label, value in mine})
                widget.options = [_ANY] + labels
                value = getattr(state, name)
                label = next((lab for lab, v in mine if v == value), None) if value is not None else None
                widget.value = label if label is not None else _ANY
                widget.disabled = not mine
            self.cell["cell_true"].description = {"annotator_agreement": "bin", "podcasts": "podcast"}.get(
                state.view, "true")
            self.disagree.value = state.disagree_only
            self.disagree.disabled = state.compare_system is None
        finally:
            self._syncing = False

    def refresh(self) -> None:
        """Redraw everything from the current state."""
        self.sync_options()
        self.show_figure()
        self.show_metrics()
        self.show_rows()
        self.ex.prefetch_next()      # after the redraw, so the background work does not slow it down

    def show_figure(self) -> None:
        w, ex = self.w, self.ex
        children = []
        self.grid = self.groups = None
        try:
            if ex.state.view in BEYOND_VIEWS:
                self.figure_area.children = self._beyond_children()
                return
            if is_cell_view(ex.state.view):
                st = ex.state
                key = (st.view, st.system, st.bins, st.split, st.group_column, str(st.group_value))
                self.grid = self._grids.get(key)
                if self.grid is None:       # built once per matrix: returning to it costs no widgets
                    self.grid = self._grids[key] = CellGrid(ex.heatmap(), self.select_cell)
                self.grid.select(st.cell_true, st.cell_pred)
                children.append(self.grid.root)
            if not is_cell_view(ex.state.view) or ex.state.compare_system:   # the caption is in it
                png = ex.figure_png(compare_only=is_cell_view(ex.state.view), prefetch=False)
                width = int.from_bytes(png[16:20], "big")          # the PNG's own width (IHDR)
                children.append(w.Image(value=png, format="png", width=str(width),
                                        layout=w.Layout(max_width="100%", height="auto")))
            else:
                children.append(w.HTML(f"<small>{html.escape(ex.caption())}</small>"))
        except ValueError as err:
            children = [w.HTML(f"<span style='color:#a00'>{html.escape(str(err))}</span>")]
        self.figure_area.children = children

    def _beyond_children(self) -> list:
        """A beyond view: one line when it has no data; else its figure, the bin or podcast
        buttons (agreement, podcasts) and its tables."""
        w, ex = self.w, self.ex
        message = ex.view_unavailable()
        if message:
            return [w.HTML(f"<div class='ser-unavailable' style='color:#444;font-style:italic'>"
                           f"{html.escape(message)}</div>")]
        png = ex.figure_png(prefetch=False)
        width = int.from_bytes(png[16:20], "big")
        children = [w.Image(value=png, format="png", width=str(width), layout=w.Layout(max_width="100%", height="auto"))]
        if ex.state.view in GROUP_VIEWS:
            what = "an agreement bin" if ex.state.view == "annotator_agreement" else "a podcast (worst first)"
            st = ex.state
            key = (st.view, st.system, st.split, st.group_column, str(st.group_value), st.bins)
            self.groups = self._groups.get(key)
            if self.groups is None:         # built once per view and system: returning costs no widgets
                options = ex.group_options()
                if ex.state.view == "podcasts":
                    options = options[:25]           # the worst 25, as in the figure; all in the list
                self.groups = self._groups[key] = GroupButtons(
                    options, lambda value: self.apply(cell_true=value), title=f"Click {what} to list its files")
            self.groups.select(st.cell_true)
            children.append(self.groups.root)
        children.append(self._tables_widget())
        return children

    def _tables_widget(self):
        st = self.ex.state
        key = (st.view, st.system, st.compare_system, st.split, st.group_column, str(st.group_value), st.bins)
        if key not in self._tables:
            self._tables[key] = self.w.HTML(tables_html(self.ex.view_tables()))
        return self._tables[key]

    def show_metrics(self) -> None:
        ex = self.ex
        try:
            parts = ["<b>Scores with bootstrap CIs</b>", ex.headline_table().to_html(na_rep="", border=0)]
            if ex.state.compare_system:
                parts += [f"<b>Where {html.escape(ex.state.system)} (A) and "
                          f"{html.escape(ex.state.compare_system)} (B) disagree, by true class or bin</b>",
                          _disagreement_summary(ex.disagreements()).to_html(index=False, border=0)]
            self.metrics.value = "".join(parts)
        except ValueError as err:
            self.metrics.value = f"<span style='color:#a00'>{html.escape(str(err))}</span>"

    def show_rows(self) -> None:
        try:
            listing = self.ex.listing()
        except ValueError as err:
            self.rows.value = f"<div class='ser-listing'><i>{html.escape(str(err))}</i></div>"
            return
        table = listing.table
        self._syncing = True
        try:
            if table is not None:
                s = listing.state
                options = [("(file order)", _NONE)] + [(column_name(c, s.system, s.compare_system), c)
                                                       for c in table.columns if c != "audio"]
                self.sort.options = options
                self.sort.value = s.sort_by if s.sort_by in table.columns else _NONE
            self.previous.disabled = table is None or self.page <= 0
            self.next.disabled = table is None or (self.page + 1) * self.page_size >= len(table)
        finally:
            self._syncing = False
        self.page = 0 if table is None else min(self.page, max(0, (len(table) - 1) // self.page_size))
        self.rows.value = rows_html(self.ex, listing, self.page, self.page_size)

    def on_export(self) -> None:
        try:
            path = self.ex.to_csv(self.export_path.value)
            self.message.value = f"wrote {html.escape(str(path))}"
        except (ValueError, OSError) as err:
            self.message.value = f"<span style='color:#a00'>{html.escape(str(err))}</span>"


def _disagreement_summary(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`~ser_diag.analysis.fusion.disagreement_by_true` with the headers a person reads."""
    return pd.DataFrame({
        "task": table["task"].to_numpy(),
        "attribute": [ATTRIBUTE_NAMES.get(a, "") if isinstance(a, str) else "" for a in table["attribute"]],
        "true class or bin": [CLASS_NAMES.get(t, t) for t in table["true"]],
        "files": table["n"].to_numpy(),
        "they disagree": table["disagree"].to_numpy(),
        "share disagreeing": [f"{100 * v:.1f}%" for v in table["share_disagree"]],
        "only A right": table["a_right"].to_numpy(),
        "only B right": table["b_right"].to_numpy(),
        "neither right": table["neither_right"].to_numpy(),
    }).rename(columns=lambda c: human_name(c))
