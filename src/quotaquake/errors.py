"""Errors that the CLI turns into one clear line and exit code 2 (usage or configuration error)."""

from __future__ import annotations

from pathlib import Path


class UsageError(Exception):
    """Bad input or an environment problem the user can fix: one line, exit code 2, no traceback.

    The message says what is wrong, where (file and field, or service), and what to do.
    """

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file is missing, unreadable or fails validation."""

    def __init__(self, path: Path | str, field: str | None, problem: str) -> None:
        self.path = Path(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: {field}" if field else str(self.path)
        super().__init__(f"{where}: {problem}")


class StackError(UsageError):
    """A service of the stack could not be started, reached or stopped."""

    def __init__(self, service: str, problem: str, hint: str = "") -> None:
        self.service = service
        message = f"{service}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)
