"""User-facing errors. Every problem with user input is raised as one of these and printed by the
CLI as a single line, ``error: <file>: <problem>``, with a non-zero exit code."""

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


class RunError(ClusteringSDFError):
    """A training run cannot start or continue (existing run folder, NaN loss, bad checkpoint)."""
