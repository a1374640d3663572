"""How netdyn's figures show in a notebook: as images, in a fresh kernel, without ``%matplotlib inline``.

netdyn draws outside pyplot (``_base.new_figure``), so the inline backend never sees its figures and IPython
would print ``<Figure size 640x420 with 1 Axes>``. IPython asks an object for ``_repr_png_`` when no formatter is
registered for its type: :class:`DisplayFigure` answers with its PNG. Where ``%matplotlib inline`` did register
one for ``Figure``, that formatter serves the same image (one image either way).
"""

from __future__ import annotations

import html

from matplotlib.figure import Figure

from netdyn._html import png_img
from netdyn.plots.save import figure_bytes


class DisplayFigure(Figure):
    """A matplotlib Figure that a notebook shows as a PNG image (everything else as ``Figure``)."""

    def _repr_png_(self) -> bytes:
        return figure_bytes(self, "png")


class FigureSet(dict[str, Figure]):
    """Figures by name (a dict) that a notebook shows one after the other, each captioned with its name."""

    def _repr_html_(self) -> str:
        items = [
            f"<figure>{png_img(figure_bytes(fig, 'png'), name)}<figcaption>{html.escape(name)}</figcaption></figure>"
            for name, fig in self.items()
        ]
        return "<div>" + "\n".join(items) + "</div>" if items else "<p>no figures</p>"
