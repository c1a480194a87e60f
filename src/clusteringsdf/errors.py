"""User-facing errors. Every problem with user input is raised as one of these and printed by the
CLI as a single line, ``error: <file>: <problem>``, with a non-zero exit code; a
:class:`UsageError` (options that do not go together) comes below the command's usage line."""

from __future__ import annotations

from pathlib import Path


class ClusteringSDFError(Exception):
    """Base class of every error the CLI reports as one line (exit code 2)."""


class DataError(ClusteringSDFError):
    """A file or folder of the user's data is missing or malformed.

    Args:
        path: the offending file or folder.
        problem: what is wrong with it, phrased for the user.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UsageError(ClusteringSDFError):
    """Options that do not go together, or an option's value out of range. The CLI prints the
    command's usage line above the one-line error (exit code 2), as for a parse error."""


class RunError(ClusteringSDFError):
    """A training run cannot start or continue (existing run folder, NaN loss, bad checkpoint)."""
