"""Text metrics for infilling: exact match after whitespace normalisation, and edit similarity."""

from __future__ import annotations


def normalize_completion(text: str) -> str:
    """Trailing whitespace removed from every line, and trailing blank lines dropped.

    A completion that ends without the newline the reference has, or with a stray trailing space, is the
    same code; leading indentation is kept because in Python it is not.
    """
    return "\n".join(line.rstrip() for line in text.splitlines()).rstrip("\n")


def exact_match(completion: str, reference: str) -> bool:
    return normalize_completion(completion) == normalize_completion(reference)


def levenshtein(a: str, b: str) -> int:
    """Character edit distance (insertions, deletions, substitutions), two-row dynamic programme."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def edit_similarity(completion: str, reference: str) -> float:
    """1 - Levenshtein distance / length of the longer string, on normalised text (1.0 = identical)."""
    a, b = normalize_completion(completion), normalize_completion(reference)
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(a, b) / longest
