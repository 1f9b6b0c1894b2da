"""Completion metrics: exact match and edit similarity, as RepoCoder defines them.

Both compare what the user would see: trailing whitespace (including the newline that
ends a line) is stripped from prediction and ground truth before comparing; leading
whitespace is kept, because a stray leading space is a visible error.
"""

from __future__ import annotations

from rapidfuzz.distance import Levenshtein


def _normalize(text: str) -> str:
    return text.rstrip()


def exact_match(prediction: str, ground_truth: str) -> bool:
    """True when the prediction equals the ground truth after stripping trailing whitespace."""
    return _normalize(prediction) == _normalize(ground_truth)


def edit_similarity(prediction: str, ground_truth: str) -> float:
    """Normalized Levenshtein similarity in [0, 1] (RepoCoder's ES; 1.0 means identical).

    Two empty strings are identical (1.0).
    """
    return float(Levenshtein.normalized_similarity(_normalize(prediction), _normalize(ground_truth)))
