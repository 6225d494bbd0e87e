"""Model selection on held-out validation episodes, never on the test episodes (ResiP and MLP-BC + PPO).

Every ``val_interval`` iterations the stage's deterministic policy plays ``val_episodes`` seeded episodes
(``val_seed``, which must differ from the test set's ``eval_seed``) through the same code as the final
evaluation; the iteration with the highest validation success (the earliest on a tie) is kept, and the
final evaluation and the export use it instead of the last iteration's policy.

``best.pt`` (written atomically) holds that iteration's whole model (``ActorCritic.state_dict``) with
every validation so far, so a resumed run keeps its best-so-far. A validation runs only right after a
checkpoint was written (``val_interval`` a multiple of ``runner.checkpoint_interval``), so ``best.pt``
never holds an iteration the checkpoint has not reached. A session first validates the run's current
iteration if the run has no validation yet (iteration 0: the untrained residual, i.e. the base) or its
due validation was missed (killed after the checkpoint), and validates the last iteration at its end,
so the last iteration is always a candidate.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robo.files import save_torch
from robo.nets.actor_critic import ActorCritic
from robo.rl.checkpoint import load_checkpoint
from robo.rl.on_policy_runner import OnPolicyRunner
from robo.run_dir import RunDir, Scalars
from robo.tasks.resip.curves import rollout_logger, write_curve

BEST = "best.pt"
# A run may turn validation on (or change how often it validates) on --resume; Validation refuses a
# best.pt validated on other episodes.
VALIDATION_MAY_CHANGE = ("val_interval", "val_episodes", "val_seed")
CURVE = "validation_curve"  # .csv: iteration, env_steps, val_success
FORMAT = "robo-validation-best/1"


@dataclass
class ValidationConfig:
    """The validation settings of a stage's config (its fields come first in config.yaml)."""

    val_interval: int = 0  # iterations between validations; 0: off (the last iteration's policy is used)
    val_episodes: int = 64  # held-out episodes per validation
    val_seed: int = 3000  # the validation episodes' seed; must differ from eval_seed (the test episodes)

    def episode_set(self, validation: bool) -> tuple[int, int]:
        """(episodes, seed) of the validation episodes, or of the stage's test episodes (its
        ``eval_episodes`` and ``eval_seed``)."""
        if validation:
            return self.val_episodes, self.val_seed
        return self.eval_episodes, self.eval_seed  # type: ignore[attr-defined]

    def check_validation(self, eval_seed: int, checkpoint_interval: int) -> None:
        if self.val_interval < 0:
            raise ValueError(f"val_interval: must be >= 0, got {self.val_interval}")
        if self.val_interval and self.val_episodes < 1:
            raise ValueError(f"val_episodes: must be >= 1, got {self.val_episodes}")
        if self.val_interval and self.val_seed == eval_seed:
            raise ValueError(f"val_seed: {self.val_seed} equals eval_seed; validation episodes must not be "
                             "the test episodes")
        if self.val_interval % checkpoint_interval:
            raise ValueError(f"val_interval: {self.val_interval} must be a multiple of "
                             f"runner.checkpoint_interval ({checkpoint_interval})")


class Validation:
    """Validates ``runner``'s model with ``success(model)`` (the validation success of a model's
    deterministic policy) and keeps the best in ``run/best.pt``; see the module text."""

    def __init__(self, run: RunDir, config: ValidationConfig, runner: OnPolicyRunner,
                 steps_per_iteration: int, success: Callable[[ActorCritic], float], tag: str,
                 log: Callable[[str], None] = print):
        self.run, self.config, self.runner, self.success, self.log = run, config, runner, success, log
        self.steps_per_iteration, self.tag = steps_per_iteration, tag  # tag: the TensorBoard scalar's
        self.best: dict[str, Any] | None = None
        if config.val_interval and (run / BEST).is_file():
            best = load_checkpoint(run / BEST, format=FORMAT)
            if (best["val_seed"], best["val_episodes"]) != (config.val_seed, config.val_episodes):
                raise ValueError(f"{run / BEST}: validated on {best['val_episodes']} episodes of seed "
                                 f"{best['val_seed']}, not {config.val_episodes} of seed {config.val_seed}")
            self.best = best

    @property
    def curve(self) -> list[dict[str, float]]:
        return self.best["curve"] if self.best else []

    def train(self, bar, scalars: Scalars) -> list[dict[str, float]]:
        """``runner.run()`` with the validations (after each due iteration's checkpoint) and the
        session's catch-ups; ``bar`` (tqdm) advances by the environment steps of each iteration."""

        def progress(_: int) -> None:  # called after the iteration's checkpoint was written
            bar.update(self.steps_per_iteration)
            if self.due():
                self.validate(scalars)

        if self.config.val_interval and (not self.curve or self.due()):  # the first, or a missed one
            self.validate(scalars)
        history = self.runner.run(progress=progress)
        self.catch_up(scalars)  # the last iteration is always a candidate
        return history

    def train_with_curve(self, env: Any, bar: Callable[..., Any], kind: str, label: str, title: str,
                         extra: Callable[[], dict[str, float]] | None = None) -> tuple[int, float]:
        """:meth:`train` under a progress bar (``bar(label, total, initial=...)``, as ``Context.bar``)
        with TensorBoard scalars under ``kind``, each iteration's rollouts on ``env`` logged
        (:func:`rollout_logger`, plus ``extra()``); then the learning curve with the validation points,
        titled ``title``. Returns (the iteration this session started at, its seconds)."""
        runner, per = self.runner, self.steps_per_iteration
        first, started = runner.iteration, time.perf_counter()
        with self.run.scalars(kind) as scalars, bar(label, runner.config.iterations * per,
                                                    initial=first * per) as progress:
            runner.on_log = rollout_logger(env, scalars, progress, per, f"{kind}/", extra)
            history = self.train(progress, scalars)
        seconds = time.perf_counter() - started
        if history:
            write_curve(self.run, "learning_curve", history, "env_steps", "rollout_success", {
                "xlabel": "environment steps", "ylabel": "exploring rollouts' success", "title": title},
                validation=self.plotted())
        return first, seconds

    def due(self) -> bool:
        """Whether the runner's current iteration is a validation iteration not yet validated."""
        interval, i = self.config.val_interval, self.runner.iteration
        return bool(interval) and i % interval == 0 and not self._validated(i)

    def catch_up(self, scalars: Scalars | None = None) -> None:
        """Validate the current iteration if it never was."""
        if self.config.val_interval and not self._validated(self.runner.iteration):
            self.validate(scalars)

    def _validated(self, iteration: int) -> bool:
        return any(v["iteration"] == iteration for v in self.curve)

    def validate(self, scalars: Scalars | None = None) -> float:
        runner = self.runner
        rate = float(self.success(runner.model))
        steps = runner.iteration * self.steps_per_iteration
        entry = {"iteration": runner.iteration, "env_steps": steps, "val_success": rate}
        curve = [*self.curve, entry]
        if self.best is None or rate > self.best["val_success"]:
            # copies: the optimiser changes the model's own tensors in place
            best = {"format": FORMAT, "iteration": runner.iteration, "val_success": rate,
                    "model": {k: v.clone() for k, v in runner.model.state_dict().items()}}
        else:
            best = dict(self.best)
        best |= {"val_seed": self.config.val_seed, "val_episodes": self.config.val_episodes, "curve": curve}
        save_torch(best, self.run / BEST)
        self.best = best
        self.run.write_csv(f"{CURVE}.csv", curve, list(entry))
        if scalars is not None:
            scalars.add(self.tag, rate, steps)
        self.log(f"validation at iteration {runner.iteration}: {rate:.1%} over {self.config.val_episodes} "
                 f"episodes (best {best['val_success']:.1%} at iteration {best['iteration']})")
        return rate

    def chosen(self) -> ActorCritic:
        """The model the stage evaluates and exports: the best validated one (validation off: the
        runner's own)."""
        if not self.best:
            return self.runner.model
        model = copy.deepcopy(self.runner.model)
        model.load_state_dict(self.best["model"])
        return model

    def chosen_line(self) -> str:
        """The report's words on the chosen iteration ("" when validation is off)."""
        if not self.best:
            return ""
        best = self.best
        return (f" (iteration {best['iteration']}: best validation success {best['val_success']:.1%} "
                f"over {self.config.val_episodes} episodes)")

    def plotted(self) -> tuple[list[dict[str, Any]], int] | None:
        """(the validation curve, the chosen iteration) for :func:`robo.tasks.resip.curves.write_curve`;
        None when validation is off."""
        return (self.curve, self.best["iteration"]) if self.best else None

    def metrics(self) -> dict[str, Any]:
        """metrics.json's entries: the chosen iteration and its validation success."""
        if not self.best:
            return {}
        return {"chosen_iteration": self.best["iteration"], "chosen_val_success": self.best["val_success"],
                "val_episodes": self.config.val_episodes, "val_seed": self.config.val_seed,
                "validations": len(self.curve)}
