"""Where the built-in workloads' data files live and how one is found, from any working directory.

Two per-user directories, both under the XDG cache directory by default:

* the **data directory** holds the files as fetched (``lrtune data fetch``): ``$LRTUNE_DATA``, else
  ``$XDG_CACHE_HOME/lrtune/data``, else ``~/.cache/lrtune/data``;
* the **cache directory** holds what is derived from them and can be rebuilt at any time (parsed corpora,
  BPE tokenizers): ``$LRTUNE_CACHE``, else ``$XDG_CACHE_HOME/lrtune``, else ``~/.cache/lrtune``.

They are set separately on purpose: pointing ``$LRTUNE_CACHE`` at a scratch directory (as the tests do) never
hides the downloaded data, and wiping the derived files never costs a download.

A data file is looked for, in order: the path the caller gives (a workload's ``data_path=``), then the file an
environment variable names (an error, never a silent fallback, when it names no file), then its place in the
data directory, then the places of earlier versions (a system-wide Debian package, ``./data/...``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DataPathError", "cache_dir", "data_dir", "find_data_file"]


class DataPathError(FileNotFoundError):
    """An environment variable (``LRTUNE_DING``, ``LRTUNE_SHAKESPEARE``) names a file that does not exist."""


def _xdg_cache_home() -> Path:
    value = os.environ.get("XDG_CACHE_HOME")
    # the XDG spec: a relative path is invalid and ignored
    return Path(value) if value and os.path.isabs(value) else Path.home() / ".cache"


def cache_dir() -> Path:
    """Derived, rebuildable files: ``$LRTUNE_CACHE``, else ``$XDG_CACHE_HOME/lrtune``, else ``~/.cache/lrtune``."""
    value = os.environ.get("LRTUNE_CACHE")
    return Path(value) if value else _xdg_cache_home() / "lrtune"


def data_dir() -> Path:
    """Fetched data files: ``$LRTUNE_DATA``, else ``$XDG_CACHE_HOME/lrtune/data``, else ``~/.cache/lrtune/data``."""
    value = os.environ.get("LRTUNE_DATA")
    return Path(value) if value else _xdg_cache_home() / "lrtune" / "data"


def find_data_file(
    path: str | os.PathLike[str] | None,
    *,
    env: str,
    relative: str,
    search: Sequence[Path],
    what: str,
    how_to_get: str,
) -> Path:
    """``path`` if given, else ``$env`` if set, else ``data_dir() / relative``, else the first of ``search``.

    Raises:
        DataPathError: ``$env`` is set (and no ``path`` given) but names no file: one line naming both.
        FileNotFoundError: nothing found; the message names the places tried, then ``how_to_get``.
    """
    if path is not None:
        if Path(path).is_file():
            return Path(path)
        raise FileNotFoundError(f"no {what} at {os.fspath(path)!r} (the data_path given). {how_to_get}")
    value = os.environ.get(env)
    if value:
        if Path(value).is_file():
            return Path(value)
        raise DataPathError(
            f"{env} is set to {value}, which is not a file: point it at the {what} or unset it "
            f"(lrtune then looks in {data_dir() / relative} first)"
        )
    candidates = [data_dir() / relative, *search]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no {what} found (looked for {tried}). {how_to_get}")
