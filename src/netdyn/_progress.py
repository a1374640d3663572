"""The one progress bar: tqdm, on standard error, shown only on a terminal (``disable=None``)."""

from __future__ import annotations

from typing import Any


def progress_bar(total: int, unit: str = "step", description: str | None = None, initial: int = 0) -> Any:
    """A tqdm bar over ``total`` units that leaves no line behind when closed and hides itself when standard
    error is not a terminal. Imported on first use so that modules without progress bars never load tqdm."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit=unit, desc=description, dynamic_ncols=True, mininterval=0.5,
        leave=False, disable=None,
    )
