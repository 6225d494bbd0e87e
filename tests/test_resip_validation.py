"""Model selection on held-out validation episodes (robo.tasks.resip.validation): the best iteration is
kept, survives a resume, is what the stage evaluates and exports, and the test episodes are refused as
validation episodes."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from robo.config import load_config
from robo.nets.policy import load_policy
from robo.registry import Context
from robo.rl.checkpoint import load_checkpoint
from robo.rl.on_policy_runner import OnPolicyRunner
from robo.run_dir import RunDir
from robo.tasks.resip.base import load_base
from robo.tasks.resip.train_mlp_ppo import MLPPPOTrainConfig
from robo.tasks.resip.train_mlp_ppo import train as train_mlp_ppo
from robo.tasks.resip.train_resip import ResiPTrainConfig, residual_env, train
from robo.tasks.resip.validation import BEST, Validation
from tests.test_mlp_bc import PPO, demo_file, mlp_run  # noqa: F401 (fixtures)
from tests.test_resip_residual import TINY, base_run  # noqa: F401 (base_run is a fixture)

VAL = ["val_interval=1", "val_episodes=2", "val_seed=3000"]


def test_the_highest_validation_success_is_kept_and_survives_a_resume(base_run, tmp_path):  # noqa: F811
    config = load_config(ResiPTrainConfig, None, [*TINY, *VAL, "runner.iterations=3"])
    run = RunDir.open(tmp_path / "run", config, kind="resip", resume=False)
    env = residual_env(load_base(base_run), config.envs, config.residual_scale, config.seed)
    runner = OnPolicyRunner(env, config.ppo, config.runner, checkpoint=run / "checkpoint.pt")
    scores = iter([0.25, 0.5, 0.5, 0.25])  # iterations 0..3: iteration 1 is the best (the earliest of a tie)
    validation = Validation(run, config, runner, 40, lambda model: next(scores), "resip/val_success")
    snapshots = {}
    for i in range(4):
        if i:
            runner.run(until=i)
        assert validation.due()
        validation.validate()
        assert not validation.due()  # validated once per iteration
        snapshots[i] = {k: v.clone() for k, v in runner.model.state_dict().items()}
    best = load_checkpoint(run / BEST, format="robo-validation-best/1")
    assert best["iteration"] == 1 and best["val_success"] == 0.5
    assert [v["val_success"] for v in best["curve"]] == [0.25, 0.5, 0.5, 0.25]
    assert all(torch.equal(best["model"][k], snapshots[1][k]) for k in snapshots[1])
    assert any(not torch.equal(snapshots[1][k], snapshots[3][k]) for k in snapshots[1])  # PPO moved it
    chosen = validation.chosen()
    assert all(torch.equal(chosen.state_dict()[k], snapshots[1][k]) for k in snapshots[1])
    assert validation.metrics()["chosen_iteration"] == 1
    resumed = Validation(run, config, runner, 40, lambda model: 1.0, "resip/val_success")  # a resume
    assert resumed.best["iteration"] == 1 and not resumed.due() and len(resumed.curve) == 4
    other = load_config(ResiPTrainConfig, None, [*TINY, "val_interval=1", "val_episodes=2", "val_seed=4000"])
    with pytest.raises(ValueError, match="validated on 2 episodes of seed 3000"):
        Validation(run, other, runner, 40, lambda model: 1.0, "resip/val_success")


def test_training_validates_every_interval_and_evaluates_and_exports_the_best(base_run, tmp_path):  # noqa: F811
    out = tmp_path / "resip"
    config = load_config(ResiPTrainConfig, None, [*TINY, *VAL, "runner.iterations=2"])
    train(config, argparse.Namespace(base=str(base_run), task=None), Context(out=out, log=lambda s: None))
    best = load_checkpoint(out / BEST)
    curve = best["curve"]
    assert [v["iteration"] for v in curve] == [0, 1, 2]  # the untrained residual (the base) is a candidate
    rates = [v["val_success"] for v in curve]
    assert all(0.0 <= r <= 1.0 for r in rates)
    assert best["val_success"] == max(rates) and best["iteration"] == rates.index(max(rates))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["chosen_iteration"] == best["iteration"] and metrics["chosen_val_success"] == max(rates)
    residual, _ = load_policy(out / "residual.pt")  # the exported residual is the best model's mean
    chosen = {k.removeprefix("actor."): v for k, v in best["model"].items() if k.startswith("actor.")}
    assert all(torch.equal(v, chosen[k]) for k, v in residual.state_dict().items() if k in chosen)
    assert (out / "validation_curve.csv").read_text().startswith("iteration,env_steps,val_success")
    assert (out / "learning_curve.png").stat().st_size > 0
    config = load_config(ResiPTrainConfig, None, [*TINY, *VAL, "runner.iterations=3", "eval_episodes=0"])
    train(config, argparse.Namespace(base=str(base_run), task=None),
          Context(out=out, resume=True, log=lambda s: None))
    resumed = load_checkpoint(out / BEST)
    assert resumed["curve"][:3] == curve and [v["iteration"] for v in resumed["curve"]] == [0, 1, 2, 3]


def test_the_learning_curve_shows_the_validation_and_the_chosen_iteration(tmp_path):
    from robo.tasks.resip.curves import write_curve

    history = [{"env_steps": 100 * i, "rollout_success": 0.1 * i} for i in range(1, 5)]
    curve = [{"iteration": i, "env_steps": 100 * i, "val_success": 0.2 * i} for i in (0, 2, 4)]
    labels = {"xlabel": "environment steps", "ylabel": "success", "title": "t"}
    pictures = []
    for name, validation in (("plain", None), ("validated", (curve, 2)), ("other_choice", (curve, 4))):
        run = RunDir.open(tmp_path / name, ResiPTrainConfig(), kind="resip", resume=False)
        write_curve(run, "learning_curve", history, "env_steps", "rollout_success", labels,
                    validation=validation)
        pictures.append((tmp_path / name / "learning_curve.png").read_bytes())
    assert len(set(pictures)) == 3  # the validation points and the chosen iteration's mark are drawn


def test_without_validation_the_last_iteration_is_evaluated_and_nothing_is_validated(base_run,  # noqa: F811
                                                                                    tmp_path):
    out = tmp_path / "resip"
    config = load_config(ResiPTrainConfig, None, [*TINY, "eval_episodes=0"])
    report = train(config, argparse.Namespace(base=str(base_run), task=None),
                   Context(out=out, log=lambda s: None))
    assert not (out / BEST).exists() and not (out / "validation_curve.csv").exists()
    assert "chosen_iteration" not in json.loads((out / "metrics.json").read_text()) and "best" not in report
    residual, _ = load_policy(out / "residual.pt")  # the last iteration's residual: PPO moved it from zero
    assert any(v.abs().max() > 0 for k, v in residual.state_dict().items() if k.endswith("weight"))


def test_validation_on_the_test_episodes_is_refused():
    with pytest.raises(ValueError, match="val_seed: 1000 equals eval_seed"):
        load_config(ResiPTrainConfig, None, ["val_interval=4", "val_seed=1000"])
    load_config(ResiPTrainConfig, None, ["val_seed=1000"])  # validation off: the seed is never used
    with pytest.raises(ValueError, match=r"multiple of runner\.checkpoint_interval"):
        load_config(ResiPTrainConfig, None, ["val_interval=3", "runner.checkpoint_interval=2"])


def test_mlp_ppo_selects_by_validation_too(mlp_run, tmp_path):  # noqa: F811
    out = tmp_path / "mlp_ppo"
    config = load_config(MLPPPOTrainConfig, None, [*PPO, "runner.iterations=2", "val_interval=2",
                                                   "val_episodes=3", "val_seed=3000"])
    report = train_mlp_ppo(config, argparse.Namespace(base=str(mlp_run), task=None),
                           Context(out=out, log=lambda s: None))
    best = load_checkpoint(out / BEST)
    rates = [v["val_success"] for v in best["curve"]]
    assert [v["iteration"] for v in best["curve"]] == [0, 2] and best["val_success"] == max(rates)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["chosen_iteration"] == best["iteration"] and f"iteration {best['iteration']}" in report
    policy, _ = load_policy(out / "policy.pt")  # the fine-tuned policy is the best model's actor
    chosen = {k.removeprefix("actor."): v for k, v in best["model"].items() if k.startswith("actor.")}
    assert all(torch.equal(v, chosen[k]) for k, v in policy.mlp.state_dict().items())
    with pytest.raises(ValueError, match="val_seed: 1000 equals eval_seed"):
        load_config(MLPPPOTrainConfig, None, ["val_interval=1", "val_seed=1000"])
