"""Shared look of every ser_diag figure: colour-blind-safe palette, sizes, saving as PDF + PNG."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

#: Okabe-Ito based palette from seaborn ("colorblind"); use for systems and groups.
PALETTE = sns.color_palette("colorblind")
#: Sequential colormap for matrices (perceptually uniform, colour-blind safe).
MATRIX_CMAP = "cividis"
#: Diverging colormap for difference matrices.
DIFF_CMAP = "vlag"
GENDER_COLORS = {"Female": PALETTE[1], "Male": PALETTE[0]}


def new_axes(ax=None, figsize=(6.0, 5.0)):
    """Return ``(fig, ax)``: the given Axes' figure, or a fresh figure of ``figsize``."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def save_figure(fig, out_dir: str | os.PathLike, stem: str, dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``<out_dir>/<stem>.pdf`` and ``.png``; return both paths.

    The layout engine (constrained layout) runs once, for the PNG; the PDF reuses those axes
    positions (the layout is in figure-relative units), which saves a third of the time. PNGs
    use fast zlib compression (level 1: same pixels, slightly larger files). PDFs carry no
    creation date, so the same figure gives the same bytes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
