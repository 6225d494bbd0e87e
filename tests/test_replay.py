"""Replay storage: FIFO per member, the demonstration partition FIFO never overwrites, the mixing ratio."""

from __future__ import annotations

import pytest
import torch

from robo.rl.replay import ReplayBuffer

K, OBS, ACT = 3, 4, 2


def rows(n: int, tag: float, start: int = 0) -> tuple[torch.Tensor, ...]:
    """n transitions per member: obs[..., 0] is the member, obs[..., 1] the row number, reward ``tag``."""
    member = torch.arange(K, dtype=torch.float32)[:, None].expand(K, n)
    number = torch.arange(start, start + n, dtype=torch.float32).expand(K, n)
    obs = torch.stack((member, number, torch.zeros(K, n), torch.zeros(K, n)), -1)
    return obs, torch.zeros(K, n, ACT), torch.full((K, n), tag), obs + 1, torch.zeros(K, n, dtype=torch.bool)


def filled(capacity: int = 64, agent: int = 40, demos: int = 25, fraction: float = 0.25) -> ReplayBuffer:
    buffer = ReplayBuffer(K, OBS, ACT, capacity, demo_fraction=fraction)
    buffer.add(*rows(agent, tag=1.0))
    if demos:
        buffer.add_demonstrations(*rows(demos, tag=-1.0, start=1000))
    return buffer


def test_without_demonstrations_sampling_is_what_it_always_was() -> None:
    buffer = filled(demos=0, fraction=0.0)
    batch = buffer.sample(32, torch.Generator().manual_seed(3))
    # The sampling before the partition existed: one randint of [K, B] indices, per-member gather.
    idx = torch.randint(0, buffer.size, (K, 32), generator=torch.Generator().manual_seed(3))
    for name, value in buffer.data.items():
        assert torch.equal(batch[name], value[torch.arange(K)[:, None], idx]), name


@pytest.mark.parametrize(("fraction", "batch_size", "demo_rows"),
                         [(0.25, 32, 8), (0.3, 10, 3), (0.5, 5, 2), (1.0, 16, 16), (0.01, 16, 0)])
def test_every_batch_holds_exactly_the_demonstration_share(fraction, batch_size, demo_rows) -> None:
    buffer = filled(fraction=fraction)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        batch = buffer.sample(batch_size, gen)
        assert batch["obs"].shape == (K, batch_size, OBS)
        is_demo = batch["reward"] == -1.0
        assert is_demo.sum(1).tolist() == [demo_rows] * K  # per member, every batch
        assert not is_demo[:, : batch_size - demo_rows].any()  # agent rows first, then demonstrations
        # Each member sees only its own rows, agent and demonstration alike.
        member = batch["obs"][..., 0]
        assert torch.equal(member, torch.arange(K, dtype=torch.float32)[:, None].expand_as(member))


def test_fifo_never_overwrites_the_demonstrations() -> None:
    buffer = filled(capacity=8, agent=0, demos=5, fraction=0.5)
    demo_before = {name: value.clone() for name, value in buffer.demo.items()}
    for start in range(0, 50, 2):
        buffer.add(*rows(2, tag=1.0, start=start))
    assert buffer.size == 8 and buffer.demo_size == 5
    assert all(torch.equal(buffer.demo[name], demo_before[name]) for name in demo_before)
    assert sorted(buffer.data["obs"][0, :, 1].tolist()) == list(range(42, 50))  # the newest 8 agent rows
    batch = buffer.sample(8, torch.Generator().manual_seed(1))
    assert set(batch["obs"][0, 4:, 1].tolist()) <= set(range(1000, 1005))


def test_prefilled_buffer_is_pushed_out_by_agent_rows() -> None:
    """G-PAYN's variant: one FIFO that starts full of demonstrations (plain ``add``), no partition."""
    buffer = ReplayBuffer(K, OBS, ACT, 6)
    buffer.add(*rows(6, tag=-1.0, start=1000))
    buffer.add(*rows(4, tag=1.0))
    assert (buffer.data["reward"] == -1.0).sum(1).tolist() == [2] * K
    buffer.add(*rows(2, tag=1.0, start=4))
    assert not (buffer.data["reward"] == -1.0).any()


def test_select_and_state_dict_keep_the_demonstrations() -> None:
    buffer = filled()
    buffer.select(torch.tensor([2, 0]))
    assert buffer.demo["obs"][:, 0, 0].tolist() == [2.0, 0.0] and buffer.members == 2
    copy = ReplayBuffer(2, OBS, ACT, 64, demo_fraction=0.25)
    copy.load_state_dict(buffer.state_dict())
    a = buffer.sample(16, torch.Generator().manual_seed(5))
    b = copy.sample(16, torch.Generator().manual_seed(5))
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_bad_mixing_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r"demo_fraction must be in \[0, 1\], got 1.5"):
        ReplayBuffer(K, OBS, ACT, 8, demo_fraction=1.5)
    with pytest.raises(ValueError, match=r"demo_fraction 0\.5 asks for demonstrations; none were added"):
        filled(demos=0, fraction=0.5).sample(8, torch.Generator())
    with pytest.raises(ValueError, match="no agent transitions"):
        filled(agent=0, fraction=0.5).sample(8, torch.Generator())
    with pytest.raises(ValueError, match="transitions for 2 members, the buffer holds 3"):
        filled().add_demonstrations(*(t[:2] for t in rows(3, tag=-1.0)))
