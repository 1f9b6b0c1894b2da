"""The simulated user: decides whether a shown suggestion is accepted.

A suggestion the user does not accept is implicitly rejected (they keep typing), which in
MCCom triggers the escalation to the cloud model. Users are strategies in a registry
(:data:`USERS`, :func:`make_user`): ``exact`` (the default, as in the paper's evaluation),
``edit-similarity`` (accepts close enough suggestions) and ``prefix`` (accepts a correct
start of the line).
"""

from __future__ import annotations

from typing import ClassVar

from mccom_core.errors import MccomError
from mccom_core.cascade.metrics import edit_similarity, exact_match


class SimulatedUser:
    """Decides whether a shown suggestion is accepted (else it is implicitly rejected)."""

    name: ClassVar[str]

    def accepts(self, prediction: str, ground_truth: str) -> bool:
        raise NotImplementedError


class ExactUser(SimulatedUser):
    """Accepts what equals the ground truth after stripping trailing whitespace (the default)."""

    name = "exact"

    def accepts(self, prediction, ground_truth):
        return exact_match(prediction, ground_truth)


class SimilarUser(SimulatedUser):
    """Accepts a suggestion whose edit similarity to the ground truth is at least ``min_similarity``."""

    name = "edit-similarity"

    def __init__(self, min_similarity: float = 0.8):
        if not 0.0 <= min_similarity <= 1.0:
            raise MccomError(f"min_similarity must lie in [0, 1], got {min_similarity}")
        self.min_similarity = min_similarity

    def accepts(self, prediction, ground_truth):
        return edit_similarity(prediction, ground_truth) >= self.min_similarity


class PrefixUser(SimulatedUser):
    """Accepts a non-empty suggestion that the ground truth starts with (a correct prefix)."""

    name = "prefix"

    def accepts(self, prediction, ground_truth):
        shown = prediction.rstrip()
        return bool(shown.strip()) and ground_truth.rstrip().startswith(shown)


USERS: dict[str, type[SimulatedUser]] = {c.name: c for c in (ExactUser, SimilarUser, PrefixUser)}


def make_user(user: str | SimulatedUser = "exact", **kwargs) -> SimulatedUser:
    """A simulated user by registry name (``kwargs`` go to its class), or ``user`` itself."""
    if isinstance(user, SimulatedUser):
        return user
    if user not in USERS:
        raise MccomError(f"unknown simulated user {user!r}: choose one of {sorted(USERS)}")
    return USERS[user](**kwargs)
