"""The counter-based walk noise: standard normal, reproducible, independent across keys and steps."""

import pytest
import torch
from scipy import stats

from sim.quadrotor.counter_noise import hash32, normal_noise


def test_noise_is_standard_normal_and_uncorrelated():
    key = torch.randint(0, 2**32, (100_000,), generator=torch.Generator().manual_seed(0))
    counter = torch.randint(0, 1000, (100_000,), generator=torch.Generator().manual_seed(1))
    x = normal_noise(key, counter, 3, torch.float32)
    assert x.shape == (3, 100_000)
    for row in x:
        assert abs(row.mean().item()) < 0.02
        assert row.std().item() == pytest.approx(1.0, abs=0.02)
        assert stats.kstest(row.numpy(), "norm").pvalue > 1e-3
    off_diagonal = torch.corrcoef(x) - torch.eye(3)
    assert off_diagonal.abs().max().item() < 0.02


def test_one_episode_stream_has_no_step_to_step_correlation():
    steps = torch.arange(50_000)
    x = normal_noise(torch.full_like(steps, 12345), steps, 3, torch.float32)[0]
    lag1 = torch.corrcoef(torch.stack((x[1:], x[:-1])))[0, 1].item()
    assert abs(lag1) < 0.03


def test_noise_is_a_pure_function_of_key_and_counter():
    key = torch.tensor([7, 7, 8, 2**32 - 1])
    counter = torch.tensor([3, 3, 3, 3])
    x = normal_noise(key, counter, 3, torch.float64)
    assert torch.equal(x[:, 0], x[:, 1])  # the same key and step, whatever the row
    assert not torch.equal(x[:, 0], x[:, 2])
    assert torch.isfinite(x).all()
    compiled = torch.compile(normal_noise)(key, counter, 3, torch.float64)
    torch.testing.assert_close(compiled, x)


def test_hash_stays_in_32_bits_without_overflow():
    x = torch.tensor([0, 1, 2**31, 2**32 - 1])
    h = hash32(x)
    assert ((h >= 0) & (h < 2**32)).all()
    assert len(set(h.tolist())) == 4
