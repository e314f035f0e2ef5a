"""Shared look of every ser_diag figure: colour-blind-safe palette, sizes, fonts that show
every name, saving as PDF + PNG."""

from __future__ import annotations

import functools
import os
import unicodedata
from pathlib import Path

import matplotlib
import numpy as np
import matplotlib.pyplot as plt
import matplotlib.ticker
import seaborn as sns
from matplotlib import font_manager

#: Okabe-Ito based palette from seaborn ("colorblind"); use for systems and groups.
PALETTE = sns.color_palette("colorblind")
#: Sequential colormap for matrices (perceptually uniform, colour-blind safe).
MATRIX_CMAP = "cividis"
#: Diverging colormap for difference matrices.
DIFF_CMAP = "vlag"
GENDER_COLORS = {"Female": PALETTE[1], "Male": PALETTE[0]}

#: Fonts tried in order for each glyph (matplotlib >= 3.6 falls back per glyph when
#: ``font.family`` is a list): DejaVu Sans, then wide-coverage fonts where installed (CJK,
#: Hangul, Arabic, ...), then STIX for symbols.
FALLBACK_FONTS: tuple[str, ...] = (
    "DejaVu Sans", "Noto Sans", "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK KR",
    "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
    "Arial Unicode MS", "Noto Sans Arabic", "Noto Sans Devanagari", "Noto Sans Thai", "STIXGeneral",
)


@functools.lru_cache(maxsize=1)
def figure_fonts() -> tuple[str, ...]:
    """The installed fonts of :data:`FALLBACK_FONTS`, in order."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return tuple(name for name in FALLBACK_FONTS if name in installed) or ("DejaVu Sans",)


@functools.lru_cache(maxsize=1)
def _covered() -> frozenset[int]:
    """Code points some font of :func:`figure_fonts` draws."""
    from matplotlib import ft2font

    points: set[int] = set()
    for name in figure_fonts():
        try:
            path = font_manager.findfont(name, fallback_to_default=False)
            points.update(ft2font.FT2Font(path).get_charmap())
        except (ValueError, OSError, RuntimeError):
            continue
    return frozenset(points)


def _transliterate(char: str) -> str:
    """ASCII for a character no figure font has: ``anyascii`` when installed ('系' -> 'Xi'),
    else its accent-free base letter, else ``U+7CFB``."""
    try:
        from anyascii import anyascii
    except ImportError:
        anyascii = None
    if anyascii is not None and (ascii_text := anyascii(char)):
        return ascii_text
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if ord(c) < 128)
    return base or f"U+{ord(char):04X}"


def displayable(text: str) -> str:
    """``text`` with every character that no figure font can draw transliterated (tables keep
    the real name; only figures use this).

    >>> displayable("sys A")
    'sys A'
    """
    covered = _covered()
    if all(ord(c) in covered or not c.isprintable() for c in text):
        return text
    return "".join(c if ord(c) in covered or not c.isprintable() else _transliterate(c) for c in text)


def readable_text(fig):
    """Transliterate, in place, the characters of ``fig``'s texts that no figure font has (a
    CJK system name on a machine without a CJK font), so no glyph is drawn as a box; returns
    ``fig``. :func:`save_figure` calls it; call it before any other ``savefig``."""
    for artist in fig.findobj(matplotlib.text.Text):
        text = artist.get_text()
        if text and (shown := displayable(text)) != text:
            artist.set_text(shown)
    for ax in fig.axes:  # tick labels are redrawn from their formatter
        for axis in (ax.xaxis, ax.yaxis):
            for formatter, setter in ((axis.get_major_formatter(), axis.set_major_formatter),
                                      (axis.get_minor_formatter(), axis.set_minor_formatter)):
                if isinstance(formatter, matplotlib.ticker.FixedFormatter):
                    formatter.seq = [displayable(str(t)) for t in formatter.seq]
                elif (isinstance(formatter, matplotlib.ticker.FuncFormatter)
                      or type(formatter).__name__ == "StrCategoryFormatter"):  # labels given as text
                    setter(_ReadableFormatter(formatter))
    return fig


class _ReadableFormatter(matplotlib.ticker.Formatter):
    """A tick formatter whose labels go through :func:`displayable`."""

    def __init__(self, inner):
        self.inner = inner

    def set_axis(self, axis):
        super().set_axis(axis)
        self.inner.set_axis(axis)

    def set_locs(self, locs):
        self.inner.set_locs(locs)

    def __call__(self, x, pos=None):
        return displayable(self.inner(x, pos))

    def format_ticks(self, values):
        return [displayable(t) for t in self.inner.format_ticks(values)]

    def get_offset(self):
        return displayable(self.inner.get_offset())

    def __getattr__(self, name):
        return getattr(self.inner, name)


def use_figure_fonts() -> None:
    """Make :func:`figure_fonts` matplotlib's font family, with per-glyph fallback (only when
    the family is still matplotlib's default, so a user's choice stands)."""
    if list(matplotlib.rcParams["font.family"]) in (["sans-serif"], list(figure_fonts())):
        matplotlib.rcParams["font.family"] = list(figure_fonts())


use_figure_fonts()


#: Matrices of more systems than this get no number in every cell (the tables hold them):
#: thousands of texts take longer to lay out than the rest of the figure and cannot be read.
ANNOTATE_CELLS_MAX = 20
#: Panels that show one row (or row and column) per system show at most this many (the best
#: ones, said in the title); the tables keep all.
MAX_SYSTEMS = 40


def shown_of(shown: int, total: int, table: str, which: str = "best") -> str:
    """A title line saying a panel shows the ``which`` ``shown`` of ``total`` systems (empty
    when all are shown).

    >>> shown_of(40, 166, "leaderboard_ranks")
    '\\nbest 40 of 166 systems shown; all in tables/leaderboard_ranks.csv'
    """
    return f"\n{which} {shown} of {total} systems shown; all in tables/{table}.csv" if shown < total else ""


def new_axes(ax=None, figsize=(6.0, 5.0)):
    """Return ``(fig, ax)``: the given Axes' figure, or a fresh figure of ``figsize``."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def grouped_errorbars(ax, part, bins: list, systems: list):
    """Each system's ``estimate`` per ``group`` of a tidy ``part`` as points with their
    ``ci_low``/``ci_high`` bars, systems side by side within each group (x = group index);
    returns the x positions of the groups."""
    x = np.arange(len(bins))
    width = 0.5 / max(len(systems), 1)
    for i, system in enumerate(systems):
        rows = part[part["system"] == system].set_index("group").reindex(bins)
        est = rows["estimate"].to_numpy(float)
        err = np.abs(np.vstack([est - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - est]))
        offset = (i - (len(systems) - 1) / 2) * width
        ax.errorbar(x + offset, est, yerr=err, fmt="-o", ms=4, lw=1.2, capsize=2,
                    color=PALETTE[i % len(PALETTE)], label=str(system))
    return x


def save_figure(fig, out_dir: str | os.PathLike, stem: str, dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<stem>.pdf`` and ``.png``; return both paths.

    The layout engine (constrained layout) runs once, for the PNG; the PDF reuses those axes
    positions (the layout is in figure-relative units), which saves a third of the time. Texts
    go through :func:`readable_text` (no missing-glyph boxes). PNGs
    use fast zlib compression (level 1: same pixels, slightly larger files). PDFs carry no
    creation date, so the same figure gives the same bytes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    readable_text(fig)
    paths = [out / f"{stem}.pdf", out / f"{stem}.png"]
    fig.savefig(paths[1], dpi=dpi, pil_kwargs={"compress_level": 1})
    engine = fig.get_layout_engine()
    if engine is not None:
        fig.set_layout_engine("none")
    try:
        fig.savefig(paths[0], metadata={"CreationDate": None})  # reproducible bytes
    finally:
        if engine is not None:
            fig.set_layout_engine(engine)
    return paths
