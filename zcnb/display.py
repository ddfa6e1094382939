"""Notebook display of matplotlib figures without pyplot.

A bare ``matplotlib.figure.Figure`` shows as ``<Figure size ...>`` unless the inline
backend is active, and exported HTML then has no picture. :class:`FigureImage` renders
the figure to PNG once and displays it as an image everywhere (JupyterLab, papermill
outputs, nbconvert HTML with the image embedded).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

__all__ = ["FigureImage", "figure_image"]


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
            from .files import write_private

            write_private(self.path, self.png)

    def _repr_png_(self) -> bytes:
        return self.png

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"image/png": self.png, "text/plain": f"[figure: {self.alt}]"}, {"image/png": {"alt": self.alt}}

    def __repr__(self) -> str:
        return f"FigureImage({self.alt!r}, {len(self.png)} bytes)"


def figure_image(figure: Any, *, alt: str = "", path: str | os.PathLike[str] | None = None) -> FigureImage:
    """Render ``figure`` for display (and save it as PNG at ``path`` when given)."""
    return FigureImage(figure, alt=alt, path=path)
