"""Ownership markers: quotaquake removes only folders it created itself.

Every folder a provider creates (the stack's work folder, a Postgres data folder) gets a marker file
naming the stack that created it, written right after the folder is made. Removal checks the marker
first: a folder without it, or with another stack's, is left alone, whatever a state file says. A hand-
edited or copied state file, or one written by another provider (the external provider names the state
file's own folder as its work folder), can therefore never make ``stack down`` delete anything else.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

MARKER_NAME = ".quotaquake-owned"
"""The marker file inside every folder quotaquake created; JSON ``{"stack_id": ..., "state_file": ...}``."""

log = logging.getLogger(__name__)


def claim(folder: Path, stack_id: str, state_file: Path | str) -> None:
    """Mark ``folder`` (just created by us) as owned by stack ``stack_id`` of ``state_file``."""
    marker = folder / MARKER_NAME
    marker.write_text(json.dumps({"stack_id": stack_id, "state_file": str(state_file)}), encoding="utf-8")
    os.chmod(marker, 0o644)


def owner_of(folder: Path) -> str | None:
    """The stack id named by ``folder``'s marker, or ``None`` (no marker, unreadable, not a marker)."""
    try:
        data = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    stack_id = data.get("stack_id") if isinstance(data, dict) else None
    return stack_id if isinstance(stack_id, str) and stack_id else None


def is_owned(folder: Path, stack_id: str) -> bool:
    """True when ``folder`` is a real folder (not a symlink) whose marker names ``stack_id``."""
    return folder.is_dir() and not folder.is_symlink() and owner_of(folder) == stack_id


def remove_owned(folder: Path | str | None, stack_id: str) -> bool:
    """Remove ``folder`` if stack ``stack_id`` created it (its marker says so); True if removed.

    Anything else (no marker, another stack's marker, a symlink, a file) is left in place and logged.
    """
    if folder is None:
        return False
    path = Path(folder)
    if not path.exists():
        return False
    if not is_owned(path, stack_id):
        log.warning("left %s in place: it carries no quotaquake marker of stack %s", path, stack_id)
        return False
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()
