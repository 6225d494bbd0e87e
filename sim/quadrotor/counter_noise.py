"""Counter-based Gaussian noise: a pure function of (key, counter), computed inside the step.

The Langevin walk needs 3 normal numbers per environment per step. Drawing them from a torch
generator is a separate, single-threaded call that cannot be fused into the compiled step.
Hashing (episode key, step, component) to uniforms and applying Box-Muller is a handful of integer
and float operations that torch.compile fuses into the step; it gives the same numbers eagerly,
compiled, on CPU and on CUDA, and makes an episode's walk reproducible from its key alone (the idea
of counter-based generators such as Philox, with a smaller hash).

Integers stay below 2**32 and every product below 2**63, so int64 arithmetic never overflows.
"""

from __future__ import annotations

import math

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, a: int) -> torch.Tensor:
    """(x * a) mod 2**32 for 0 <= x < 2**32, split in 16-bit halves of ``a`` to stay below 2**63."""
    low = x * (a & 0xFFFF)
    high = ((x * (a >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit avalanche hash (MurmurHash3's finaliser) of int64 values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = _mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def normal_noise(key: torch.Tensor, counter: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """Standard normal numbers, component-major [size, N], for int64 keys [N] and counters [N].

    Box-Muller on pairs of 16-bit uniforms, one 32-bit hash a pair: the tails are cut at 4.85
    standard deviations (a probability of 1e-6), which a reference walk never misses.
    """
    # Hashing the counter before mixing in the key keeps two episodes' streams from being shifted
    # copies of each other.
    base = hash32(key ^ hash32(counter & _MASK32))
    out = []
    for pair in range((size + 1) // 2):
        h = base if pair == 0 else hash32((base + pair * 0x9E3779B9) & _MASK32)
        u1 = ((h >> 16).to(dtype) + 0.5) * (1.0 / 65536)
        u2 = ((h & 0xFFFF).to(dtype) + 0.5) * (1.0 / 65536)
        radius = torch.sqrt(-2.0 * torch.log(u1))
        angle = (2 * math.pi) * u2
        out += [radius * torch.cos(angle), radius * torch.sin(angle)]
    return torch.stack(out[:size], 0)


def key_uniform(key: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """One U(0, 1) number per int64 key [N] in [0, 2**32), independent of the key's normal stream
    (:func:`normal_noise` hashes counters from 1 up; this salts the key instead)."""
    return (hash32(key ^ 0x5BD1E995).to(dtype) + 0.5) * (1.0 / 2**32)
