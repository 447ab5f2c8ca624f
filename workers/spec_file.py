"""The one reader of the TOML/JSON tables people write: sweep grids and training recipes.

`.json` is JSON and `.toml` is TOML; any other suffix is refused, so a file never parses as what
its name does not say."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

FORMATS = {".toml": "TOML", ".json": "JSON"}


def read_table(path, what: str, shape: str, error: type[Exception] = ValueError) -> dict:
    """The table in `path`, a dict. `what` names the file in messages ("grid", "spec"), `shape` says
    what it must hold; every problem raises `error` with one line."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise error(f"{path}: a {what} file is .toml or .json, not {path.suffix or 'without a suffix'}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    except OSError as e:
        raise error(f"{path}: cannot read it ({e.strerror})") from None
    try:
        table = tomllib.loads(raw.decode()) if kind == "TOML" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid {kind}: {str(e).splitlines()[0]}") from None
    if not isinstance(table, dict):
        raise error(f"{path}: {shape}")
    return table
