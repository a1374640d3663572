"""mkdocs hooks of the documentation site (mkdocs.yml's ``hooks``).

The docstrings cross-reference in reStructuredText roles (``:class:`~netdyn.errors.ModelError```), which
mkdocstrings' Google-style renderer leaves as text: a role followed by inline code. This hook renders each as the
code alone, shortened to its last name where the role asked for it with ``~``, as Sphinx would.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):<code>(~?)([^<]*)</code>")


def _shorten(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if match.group(1) else target}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    """The page's HTML with every reStructuredText role rendered as its code."""
    return _ROLE.sub(_shorten, html)
