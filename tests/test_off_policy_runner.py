"""The off-policy runner: demonstrations mixed into SAC batches, save on interrupt, disk-full checkpoints."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal

import pytest
import torch
from test_sac import LEARNING, LENGTHS, MASSES, SMALL, assert_swings_up, make_pendulums

from robo.rl import checkpoint
from robo.rl.off_policy_runner import OffPolicyRunner, RunnerConfig
from robo.rl.vec_env import final_observation

torch.set_num_threads(1)


def expert(obs: torch.Tensor) -> torch.Tensor:
    """Energy pumping far from upright, a PD controller near it (about -110 to -260 per episode), for
    pendulums 0 and 1."""
    cos, sin, omega = obs.unbind(-1)
    mass, length = torch.tensor(MASSES[:2]), torch.tensor(LENGTHS[:2])
    energy = 0.5 * mass * length**2 / 3 * omega**2 + mass * 10.0 * length / 2 * (cos - 1)  # 0 at rest upright
    pump = torch.sign(omega) * torch.sign(-energy)
    hold = -(8.0 * torch.atan2(sin, cos) + 2.0 * omega) / 2.0
    return torch.where(cos > 0.85, hold, pump).clamp(-1, 1)[:, None]


def demonstrations(steps: int) -> tuple[torch.Tensor, ...]:
    """``steps`` expert transitions per pendulum, ``[K, steps, ...]`` as the replay takes them."""
    env = make_pendulums([0, 1])
    obs, _ = env.reset(seed=11)
    out: list[list[torch.Tensor]] = [[], [], [], [], []]
    for _ in range(steps):
        action = expert(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        row = (obs, action, reward, final_observation(next_obs, terminated | truncated, info), terminated)
        for column, value in zip(out, row, strict=True):
            column.append(value)
        obs = next_obs
    return tuple(torch.stack(column, 1) for column in out)


def test_demonstrations_mixed_into_every_batch_and_the_pendulum_is_learned() -> None:
    cfg = dataclasses.replace(LEARNING, batch_size=64)
    train = RunnerConfig(steps=3000, demo_fraction=0.25)
    runner = OffPolicyRunner([0, 1], make_pendulums, cfg, train, seed=0)
    demo = demonstrations(400)
    runner.replay.add_demonstrations(*demo)
    batches = []
    update = runner.group.update

    def recording_update(batch, noise=None):
        batches.append(batch)
        return update(batch, noise)

    runner.group.update = recording_update
    runner.run()
    assert len(batches) == 3000 - 500 + 1
    for batch in batches[:: 250]:
        # Rows found among the demonstrations (continuous states: agent rows never repeat them exactly).
        found = (batch["obs"][:, :, None, :] == demo[0][:, None, :, :]).all(-1).any(-1)
        assert found.sum(1).tolist() == [16, 16]  # round(0.25 * 64) per member, every batch
        assert found[:, 48:].all()
    assert_swings_up(runner, [0, 1])


def straight_and_interrupted(tmp_path, interrupt) -> tuple[OffPolicyRunner, OffPolicyRunner, int]:
    """A run to 400 steps; the same run interrupted by ``interrupt`` at the 150th step, then resumed."""
    train = RunnerConfig(steps=400, log_interval=100, checkpoint_interval=200)
    straight = OffPolicyRunner([0, 1], make_pendulums, SMALL, train, seed=5)
    straight.run()
    path = tmp_path / "run.pt"
    first = OffPolicyRunner([0, 1], make_pendulums, SMALL, train, seed=5, checkpoint=path)
    calls = []

    def progress(n: int) -> None:
        calls.append(n)
        if len(calls) == 150:
            interrupt()

    with pytest.raises(KeyboardInterrupt):
        first.run(progress=progress)
    saved = int(torch.load(path, weights_only=True)["step"])
    resumed = OffPolicyRunner([0, 1], make_pendulums, SMALL, train, seed=5, checkpoint=path)
    resumed.load(path)
    resumed.run()
    return straight, resumed, saved


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def send(signum: int):
    return lambda: os.kill(os.getpid(), signum)


@pytest.mark.parametrize("interrupt", [send(signal.SIGINT), send(signal.SIGTERM), raise_keyboard_interrupt],
                         ids=["SIGINT", "SIGTERM", "KeyboardInterrupt"])
def test_an_interrupt_saves_the_step_it_came_in_and_resume_continues_identically(tmp_path, interrupt) -> None:
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    straight, resumed, saved = straight_and_interrupted(tmp_path, interrupt)
    assert saved == 150  # not the last periodic checkpoint (100): nothing but the step in progress is lost
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored
    for a, b in zip(straight.group.actor.parameters(), resumed.group.actor.parameters(), strict=True):
        assert torch.equal(a, b)
    assert straight.curves == resumed.curves
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


# What PyTorch's zip writer raises when the disk fills under it.
ZIP_WRITER_FULL = RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 2112 vs 2006")


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), ZIP_WRITER_FULL],
                         ids=["ENOSPC", "pytorch-zip-writer"])
def test_a_full_disk_is_named_with_the_file_and_leaves_no_temporary_file(tmp_path, monkeypatch,
                                                                        failure) -> None:
    runner = OffPolicyRunner([0, 1], make_pendulums, SMALL, RunnerConfig(steps=200),
                             checkpoint=tmp_path / "c.pt")
    runner.run(until=20)
    good = (tmp_path / "c.pt").read_bytes()
    real_save = torch.save

    def save_until_the_disk_fills(obj, path):
        real_save(obj, path)  # part of the file is on disk when the write fails
        raise failure

    monkeypatch.setattr(checkpoint.torch, "save", save_until_the_disk_fills)
    with pytest.raises(OSError) as err:
        runner.save(tmp_path / "c.pt")
    message = str(err.value)
    assert message == f"disk full: no space left on the device to write {tmp_path / 'c.pt'}"
    assert err.value.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"] and (tmp_path / "c.pt").read_bytes() == good


def test_a_checkpoint_from_before_the_split_still_resumes(tmp_path) -> None:
    """Format 2 kept the replay inside the SAC group's state; such a run continues where it stood."""
    runner = OffPolicyRunner([0, 1], make_pendulums, SMALL, RunnerConfig(steps=200))
    runner.run(until=120)
    state = runner.state_dict()
    state["group"]["buffer"] = state.pop("replay")
    state["format"] = "robo-sac-group/2"
    torch.save(state, tmp_path / "old.pt")
    resumed = OffPolicyRunner([0, 1], make_pendulums, SMALL, RunnerConfig(steps=200))
    resumed.load(tmp_path / "old.pt")
    assert resumed.step == 120 and resumed.replay.size == 120
    assert torch.equal(resumed.replay.data["obs"][:, :120], runner.replay.data["obs"][:, :120])


def scripted_judge(scores: dict[int, list[float]], runner_ref: list[OffPolicyRunner], seen: list):
    """A judge that gives member id i its next score, taken from ``scores[i]``, and records, per call,
    the step and every judged member's current actor weights (to compare with what is handed on)."""

    def judge(active, fly):
        runner = runner_ref[0]
        episodes = fly(active)
        assert episodes.returns.shape == (int(active.sum()), runner.envs)
        score = torch.full((active.numel(), 1), -float("inf"))
        values = {"score": torch.full((active.numel(),), float("nan"))}
        for k in active.nonzero()[:, 0].tolist():
            i = runner.ids[k]
            score[k, 0] = values["score"][k] = scores[i].pop(0)
            seen.append((runner.step, i, runner.group.member_actor(k).state_dict()))
        return score, values

    return judge


def test_the_best_judged_snapshot_is_handed_on_and_survives_compaction_and_resume(tmp_path) -> None:
    # Member 0 finishes at step 200 (its should_finish), member 1 trains on alone to 400.
    train = RunnerConfig(steps=400, log_interval=50, select_interval=100, checkpoint_interval=1000)
    scores = {0: [1.0, 3.0], 1: [5.0, 2.0, 7.0, 6.0]}
    ref: list[OffPolicyRunner] = []
    seen: list = []
    handed: dict[int, tuple[dict, dict]] = {}

    def finish_member_0_at_200(stats):
        return torch.tensor([i == 0 and stats.step >= 200 for i in stats.ids])

    def make(checkpoint=None):
        runner = OffPolicyRunner([0, 1], make_pendulums, SMALL, train, seed=3,
                                 judge=scripted_judge(scores, ref, seen), checkpoint=checkpoint,
                                 should_finish=finish_member_0_at_200,
                                 on_finish=lambda i, r, actor: handed.__setitem__(i, (r, actor.state_dict())))
        ref[:] = [runner]
        return runner

    make(tmp_path / "c.pt").run(until=300)  # checkpointed at 300: member 1 judged at 100, 200, 300
    resumed = make()
    resumed.load(tmp_path / "c.pt")
    resumed.run()
    snapshot = {(step, i): weights for step, i, weights in seen}
    record0, actor0 = handed[0]
    record1, actor1 = handed[1]
    assert record0["best_step"] == 200 and record0["best_score"] == 3.0 and record0["select_score"] == 3.0
    assert record1["best_step"] == 300 and record1["best_score"] == 7.0 and record1["select_score"] == 6.0
    for name, value in actor0.items():
        assert torch.equal(value, snapshot[(200, 0)][name])
    for name, value in actor1.items():
        assert torch.equal(value, snapshot[(300, 1)][name])  # not the last (400) weights
    assert not torch.equal(actor1["0.weight"], snapshot[(400, 1)]["0.weight"])
    assert scores == {0: [], 1: []}  # judged every 100 steps while training, not after finishing
    points = [p for p in resumed.curves[1] if "select_score" in p]
    assert [(p["step"], p["select_score"]) for p in points] == [(100, 5), (200, 2), (300, 7), (400, 6)]


def test_select_interval_needs_a_judge_and_a_multiple_of_the_log_interval() -> None:
    with pytest.raises(ValueError, match="multiple of log_interval"):
        RunnerConfig(log_interval=100, select_interval=150)
    with pytest.raises(ValueError, match="select_interval and a judge"):
        OffPolicyRunner([0], make_pendulums, SMALL, RunnerConfig(log_interval=50, select_interval=100))
