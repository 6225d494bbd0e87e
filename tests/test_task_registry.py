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
