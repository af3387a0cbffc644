"""Progress bars for long finite work (a folder, a video, a sweep, a calibration), with tqdm.

On a terminal only: when stderr is a file or a pipe (CI logs), no bar is drawn, so logs stay
clean; ``enabled`` forces it either way.
"""

from __future__ import annotations

import sys


def progress_bar(total: int | None, desc: str, unit: str = "img", enabled: bool | None = None):
    """A tqdm bar on stderr, or None when it should not be shown."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)
