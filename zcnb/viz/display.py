"""Notebook display of matplotlib figures without pyplot.

A bare ``matplotlib.figure.Figure`` shows as ``<Figure size ...>`` unless the inline
backend is active, and exported HTML then has no picture. :class:`FigureImage` renders
the figure to PNG once and displays it as an embedded ``<img>`` with alt text everywhere
(JupyterLab, papermill outputs, nbconvert HTML).
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

__all__ = ["FigureImage", "PngImage", "figure_image"]


class FigureImage:
    """A rendered figure: PNG bytes plus alt text; ``.figure`` keeps the original."""

    def __init__(self, figure: Any, *, alt: str = "", dpi: int = 110, path: str | os.PathLike[str] | None = None) -> None:
        self.figure = figure
        self.alt = alt or (figure.axes[0].get_title() if getattr(figure, "axes", None) else "figure")
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        self.png = buf.getvalue()
        self.path = Path(path) if path else None
        if self.path is not None:
            from ..files import write_private

            write_private(self.path, self.png)

    def _repr_html_(self) -> str:
        # An <img> with alt text: nbconvert's image/png template has no alt attribute.
        data = base64.b64encode(self.png).decode("ascii")
        return f'<img class="zcnb-figure" alt="{html.escape(self.alt)}" src="data:image/png;base64,{data}"/>'

    def __repr__(self) -> str:
        return f"FigureImage({self.alt!r}, {len(self.png)} bytes)"


class PngImage(FigureImage):
    """An already rendered PNG file, displayed like a figure."""

    def __init__(self, path: str | os.PathLike[str], *, alt: str) -> None:
        self.figure = None
        self.alt = alt
        self.png = Path(path).read_bytes()
        self.path = Path(path)


def figure_image(figure: Any, *, alt: str = "", path: str | os.PathLike[str] | None = None) -> FigureImage:
    """Render ``figure`` for display (and save it as PNG at ``path`` when given)."""
    return FigureImage(figure, alt=alt, path=path)
