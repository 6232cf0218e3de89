"""Keyed randomness: every random draw in the library comes from :func:`rng_for`.

A draw depends only on the seed and the keys it is asked for (sample key, op position, op
name, ...), never on what ran before, the worker count or Python's salted ``hash()``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from degrade.errors import DegradeError

__all__ = ["rng_for", "seed_words", "stable_hash"]


def stable_hash(value: str | bytes | int) -> int:
    """Return a 64-bit hash of ``value`` that is the same in every process and platform.

    Strings, bytes and integers are tagged before hashing, so ``"1"`` and ``1`` differ.

    Examples
    --------
    >>> stable_hash("blur") == stable_hash("blur")
    True
    >>> stable_hash("1") != stable_hash(1)
    True
    """
    if isinstance(value, bool):
        raw = b"b:" + (b"1" if value else b"0")
    elif isinstance(value, (int, np.integer)):
        raw = b"i:" + str(int(value)).encode()
    elif isinstance(value, str):
        raw = b"s:" + value.encode("utf-8")
    elif isinstance(value, bytes):
        raw = b"y:" + value
    else:
        raise DegradeError(
            f"random keys must be str, bytes or int, got {type(value).__name__}"
        )
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


def seed_words(seed: int, *keys: str | bytes | int) -> list[int]:
    """Return the entropy words that :func:`rng_for` feeds to ``SeedSequence``.

    Examples
    --------
    >>> len(seed_words(0, "a", 1))
    3
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DegradeError(f"seed must be a non-negative integer, got {seed!r}")
    return [int(seed)] + [stable_hash(k) for k in keys]


def rng_for(seed: int, *keys: str | bytes | int) -> np.random.Generator:
    """Return a fresh generator determined by ``seed`` and ``keys`` alone.

    Parameters
    ----------
    seed : int
        The build's seed, a non-negative integer.
    *keys : str, bytes or int
        What the draw is for: sample key, op position, op name, ...

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> a = rng_for(0, "sample-1", 0, "noise").integers(1000)
    >>> b = rng_for(0, "sample-1", 0, "noise").integers(1000)
    >>> bool(a == b)
    True
    """
    return np.random.default_rng(np.random.SeedSequence(seed_words(seed, *keys)))
