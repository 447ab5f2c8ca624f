"""Workers read and write only under the roots they were given: the data root and the input
and output roots recorded with each submission. A path that resolves (symlinks and `..`
followed) outside all of them is refused before anything is opened.
"""

from __future__ import annotations

import os
from pathlib import Path


class OutsideRoots(ValueError):
    pass


def resolve_inside(path, roots) -> Path:
    """`path` resolved, or OutsideRoots naming it and the allowed roots."""
    real = Path(os.path.realpath(path))
    for root in roots:
        root = Path(os.path.realpath(root))
        if real == root or root in real.parents:
            return real
    raise OutsideRoots(
        f"{path} is outside the allowed roots ({', '.join(str(r) for r in roots)}); "
        "put it under CVFLEET_DATA or submit it from its own directory"
    )
