"""Exact and near-duplicate removal: MinHash over shingles of normalized lines, banded LSH for candidates.

Duplicates must go before the held-out split, or held-out numbers measure memorisation of a copy.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from training.parallel import parallel_map

NUM_PERMUTATIONS = 64
BANDS = 16  # 16 bands x 4 rows: pairs with Jaccard >= 0.75 collide in some band with high probability
SHINGLE_LINES = 3
_MERSENNE = (1 << 61) - 1


def normalized_lines(text: str) -> list[str]:
    """Lines with whitespace collapsed and blank lines dropped, so reformatting does not hide a copy."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def exact_key(text: str) -> str:
    return hashlib.sha1("\n".join(normalized_lines(text)).encode()).hexdigest()


def _shingle_hashes(text: str) -> np.ndarray:
    lines = normalized_lines(text)
    width = min(SHINGLE_LINES, max(1, len(lines)))
    shingles = {"\n".join(lines[i : i + width]) for i in range(max(1, len(lines) - width + 1))}
    hashes = [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in shingles]
    return np.array(hashes, dtype=np.uint64) % np.uint64(_MERSENNE)


def minhash(text: str, seed: int = 0) -> np.ndarray:
    """(NUM_PERMUTATIONS,) MinHash signature of the text's line shingles."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 31, NUM_PERMUTATIONS, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, NUM_PERMUTATIONS, dtype=np.uint64)
    x = _shingle_hashes(text)  # (S,)
    # (S, P) universal hashes; values < 2^61 * 2^31 overflow uint64, which only permutes them further.
    permuted = (x[:, None] * a[None, :] + b[None, :]) % np.uint64(_MERSENNE)
    return permuted.min(axis=0)


def _fingerprint(text: str) -> tuple[str, np.ndarray]:
    return exact_key(text), minhash(text)


def duplicate_indices(texts: Sequence[str], threshold: float = 0.75, workers: int = 1) -> dict[int, int]:
    """{index of a duplicate: index of the earlier text it duplicates}.

    Exact after normalisation, or estimated Jaccard similarity of line shingles >= threshold. The
    fingerprints (the expensive part) are computed in ``workers`` processes; the matching is sequential, so
    the result does not depend on ``workers``.
    """
    duplicates: dict[int, int] = {}
    first_by_key: dict[str, int] = {}
    signatures: dict[int, np.ndarray] = {}
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    rows = NUM_PERMUTATIONS // BANDS
    for i, (key, signature) in enumerate(parallel_map(_fingerprint, texts, workers, chunksize=32)):
        if key in first_by_key:
            duplicates[i] = first_by_key[key]
            continue
        first_by_key[key] = i
        match = None
        for band in range(BANDS):
            bucket = buckets[(band, signature[band * rows : (band + 1) * rows].tobytes())]
            for j in bucket:
                if match is None and float(np.mean(signatures[j] == signature)) >= threshold:
                    match = j
            bucket.append(i)
        if match is not None:
            duplicates[i] = match
        signatures[i] = signature
    return duplicates
