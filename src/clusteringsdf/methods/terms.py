"""Named, weighted loss terms and their total."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Term(NamedTuple):
    """One loss term: its (unweighted) value and the weight it enters the total with."""

    value: torch.Tensor
    weight: float


Terms = dict[str, Term]


def weighted_total(terms: Terms) -> torch.Tensor:
    """Sum of value x weight over the terms, in their order (terms of weight 0 are left out)."""
    total = None
    for value, weight in terms.values():
        if weight == 0:
            continue
        total = value * weight if total is None else total + value * weight
    if total is None:
        raise ValueError("no loss terms")
    return total
