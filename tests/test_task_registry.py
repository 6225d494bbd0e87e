"""The task registry: robo train / robo eval build one subcommand per registered stage, all alike."""

from __future__ import annotations

import dataclasses
import sys
import textwrap

import pytest

from robo import registry
from robo.cli import main

TOY_PACKAGE = '''
"""A task added the way every method is: this package and one line in TASK_PACKAGES."""
from robo.registry import Stage, Task

TASKS = [Task("toy", "a toy task", train=Stage("toy_task.stages:train", "toy_task.stages:ToyConfig", "toy"),
              evaluate=Stage("toy_task.stages:evaluate", "toy_task.stages:ToyConfig", "toy",
                             resumable=False))]
'''

TOY_STAGES = '''
from dataclasses import dataclass

from robo.run_dir import RunDir


@dataclass
class ToyConfig:
    steps: int = 3


def train(config, args, ctx):
    run = RunDir.open(ctx.out, config, kind="toy", resume=ctx.resume)
    with ctx.bar("toy", config.steps) as bar:
        for _ in range(config.steps):
            bar.update(1)
    if config.steps > 100:  # a failure found once the run folder is written, before any checkpoint
        raise RuntimeError(f"toy: {config.steps} steps is too many")
    run.write_json("metrics.json", {"steps": config.steps})
    return f"toy trained {config.steps} steps into {ctx.out}"


def evaluate(config, args, ctx):
    return f"toy evaluated, out={ctx.out}"
'''


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    package = tmp_path / "toy_task"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(TOY_PACKAGE))
    (package / "stages.py").write_text(textwrap.dedent(TOY_STAGES))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "TASK_PACKAGES", (*registry.TASK_PACKAGES, "toy_task"))
    yield
    for name in [m for m in sys.modules if m.startswith("toy_task")]:
        del sys.modules[name]


def test_every_registered_stage_resolves_its_config_and_function():
    found = registry.tasks()
    assert {"raptor", "raptor-teachers", "raptor-student"} <= set(found)
    for task in found.values():
        for stage in (task.train, task.evaluate):
            if stage is None:
                continue
            assert callable(registry.resolve(stage.run))
            target = registry.resolve(stage.config)
            assert dataclasses.is_dataclass(target) or callable(target)


def test_a_new_task_package_gets_train_and_eval_with_the_common_options(toy_task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "toy", "--set", "steps=5", "--out", str(out)]) == 0
    assert "toy trained 5 steps" in capsys.readouterr().out
    assert (out / "metrics.json").read_text().strip().endswith("}")
    # Resume under a changed config is refused, naming the key; the run's config stays as it was.
    assert main(["train", "toy", "--set", "steps=6", "--out", str(out), "--resume"]) == 1
    assert "differs from the run's" in capsys.readouterr().err
    assert "steps: 5" in (out / "config.yaml").read_text()
    assert main(["train", "toy", "--set", "steps=5", "--out", str(out), "--resume"]) == 0
    assert main(["eval", "toy", "--out", str(tmp_path / "e")]) == 0
    assert "toy evaluated" in capsys.readouterr().out


def test_common_options_are_checked_the_same_for_every_task(toy_task, tmp_path, capsys):
    assert main(["train", "toy", "--resume"]) == 1
    assert "--resume needs --out" in capsys.readouterr().err
    assert main(["train", "toy", "--set", "stepz=1", "--out", str(tmp_path / "x")]) == 1
    assert "unknown config key 'stepz'" in capsys.readouterr().err
    assert main(["train", "toy", "--config", str(tmp_path), "--out", str(tmp_path / "y")]) == 1
    assert "is a folder; pass a YAML file" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_training_that_fails_before_saving_anything_leaves_no_run_folder(toy_task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "toy", "--set", "steps=101", "--out", str(out)]) == 1
    assert "101 steps is too many" in capsys.readouterr().err
    assert not out.exists()  # so the corrected command can use the same --out
    assert main(["train", "toy", "--set", "steps=5", "--out", str(out)]) == 0


# Settings that once passed the config check and failed only after the run folder was written
# (locking the folder: a new run refuses it, --resume refuses the changed setting).
LATE_SETTINGS = [
    ("dp", "diffusion.lr=-1", "diffusion.lr"),
    ("dp", "diffusion.beta_schedule=bogus", "diffusion.beta_schedule"),
    ("dp", "diffusion.kernel_size=4", "diffusion.kernel_size"),
    ("dp", "diffusion.groups=7", "diffusion.groups"),
    ("dp", "diffusion.pred_horizon=30", "diffusion.pred_horizon"),
    ("gpayn", "sac.actor_hidden=[-4]", "sac.actor_hidden"),
    ("gpayn", "env.position_range=-1", "position_range"),
    ("online-cbf", "filter.margin=-1", "margin"),
    ("online-cbf", "filter.slack_weight=-5", "slack_weight"),
    ("online-cbf", "jitter=-1", "jitter"),
    ("online-cbf", "obstacles=-1", "obstacles"),
    ("raptor", "fleet.size=0", "fleet.size"),
    ("raptor", "teachers.device=bogus", "device"),
    ("raptor", "student.device=gpu", "student.device"),
]


@pytest.mark.parametrize(("task", "setting", "key"), LATE_SETTINGS)
def test_bad_settings_are_refused_by_the_config_check_naming_the_key(task, setting, key):
    from robo.config import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        registry.load_stage_config(registry.tasks()[task].train, None, [setting])
