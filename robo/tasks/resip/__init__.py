"""ResiP (Ankile et al. 2024) on the MuJoCo assembly benchmark (sim.assembly): the diffusion-policy
base trained by behaviour cloning on the scripted expert's demonstrations (``robo train dp``), its
evaluation (``robo eval dp``), and :func:`robo.tasks.resip.base.load_base`, the frozen base a residual
policy is trained on top of; the MLP-BC baseline (``robo train dp --set policy=mlp``) and its PPO
fine-tuning (``robo train mlp-ppo``).
"""

import argparse

from robo.registry import Stage, Task

TRAIN_DESCRIPTION = """\
Train the diffusion-policy base of ResiP by behaviour cloning (robo.rl.diffusion_bc: DP ConditionalUnet1D,
DDPM 100 steps squaredcos_cap_v2, epsilon prediction, AdamW, cosine schedule) on the scripted expert's
demonstrations of a task (recorded into the run folder as demos.hdf5 unless demos=PATH is given).
Writes: config.yaml, demos.hdf5, checkpoint.pt (resume), tensorboard/, loss.csv/.png, metrics.json and
policy.pt (the U-Net with its normalisation bounds: the frozen base of the residual).

With policy=mlp the same command trains the MLP-BC baseline instead: an MLP regressing the whole chunk
(robo.nets.chunking.MLPChunkPolicy, mlp_hidden layers, the diffusion block's horizons, optimiser,
schedule and EMA), which `robo eval dp` evaluates and `robo train mlp-ppo` fine-tunes.

examples:
  robo train dp --task peg_2mm --config configs/resip_quick.yaml --out runs/dp/peg_2mm
  robo train dp --task peg_2mm --config configs/resip_mlp_quick.yaml --out runs/mlp/bc
  robo train dp --task peg_0.2mm --config configs/resip.yaml --set randomness=med
  robo train dp --task pick_peg_2mm --config configs/resip_quick.yaml --out runs/dp/pick
  robo train dp --out runs/dp/peg_2mm --resume
"""

EVAL_DESCRIPTION = """\
Success rate of a trained base over seeded episodes (DDIM 16 steps, action chunks of 8; an MLP-BC base
predicts its chunks directly), batched
environments; writes eval_dp/metrics.json and episode_strip.png into the run (or --out). metrics.json
counts how the episodes ended (sim.assembly.failures: success, jammed, beside_hole, lateral_miss,
yaw_miss, lined_up, lined_up_above, never_reached, ...); episode_steps=N evaluates under another time
limit (a base that succeeds given more time is slow, not wrong); noise_scale=S starts DDIM from S times
the trained N(0, 1) noise (0: one deterministic chunk per observation; its own eval_dp_ddim16_noise0
folder).

examples:
  robo eval dp --base runs/dp/peg_2mm
  robo eval dp --base runs/dp/peg_2mm --set episodes=400 --set ddim_steps=4
  robo eval dp --base runs/dp/peg_2mm --set ddim_steps=8 --set episode_steps=400
  robo eval dp --base runs/dp/peg_2mm --set noise_scale=0
"""


RESIP_DESCRIPTION = """\
Train ResiP's residual policy with PPO on top of a frozen diffusion base (a `robo train dp` run, DDIM 4,
chunks of 8): a Gaussian MLP 2x256 on (normalised obs, the base's current action), last layer zero
(ResiP starts as its base), action = base + 0.1 x residual in the base's normalised action space, fixed
log-std -1; PPO with one episode of steps per environment per iteration, gamma 0.999, GAE 0.95, clip 0.2,
up to 50 full-batch epochs stopped at approximate KL 0.1, actor lr 3e-4, critic lr 5e-3, sparse success
reward. hold_steps=K holds each residual action and its exploration noise for K steps as ONE PPO decision
(temporally correlated exploration, exact likelihood); residual_channels=[pos.x,...] limits the action
channels the residual corrects; base_noise_scale=S starts the base's DDIM from S times its trained noise
while training, evaluating and in the exported graph (0: one deterministic chunk per observation, as
`robo eval dp --set noise_scale=0`). Then base and ResiP (residual mean, every step) are evaluated on the same
seeded episodes, paired (episodes only one wins, exact McNemar p), each episode's outcome classified
(sim.assembly.failures); eval_episode_steps=N evaluates under another time limit. val_interval=N
(with val_episodes, val_seed, which must differ from eval_seed) picks the policy on held-out validation
episodes every N iterations (iteration 0, the base alone, included); the final evaluation and the export
use that iteration.
Writes: config.yaml, checkpoint.pt (resume), tensorboard/, learning_curve.csv/.png, residual.pt,
metrics.json, eval_episodes.json (every episode's outcome, to pair two runs on the same episodes),
best.pt and validation_curve.csv (with val_interval).

examples:
  robo train resip --task peg_2mm --base runs/dp/peg_2mm --out runs/resip/peg_2mm --set threads=1
  robo train resip --base runs/dp/peg_2mm --out runs/resip/peg_2mm --resume --set runner.iterations=40
  robo train resip --base runs/dp/a --config configs/resip_residual_quick.yaml --out runs/resip/r6
  robo train resip --base runs/dp/a --config configs/resip_residual_quick.yaml --out runs/resip/r6 \\
      --resume --set eval_episode_steps=400 --set eval_episodes=100
  robo train resip --base runs/dp/a --config configs/resip_residual_quick.yaml --out runs/resip/long \\
      --set runner.iterations=96 --set val_interval=8 --set val_episodes=100 --set val_seed=3000
  robo train resip --task peg_0.2mm --base runs/dp/fine --config configs/resip_residual_quick.yaml \\
      --out runs/resip/fine_n0 --set base_noise_scale=0 --set runner.init_std=0.1
"""


MLP_PPO_DESCRIPTION = """\
ResiP's baseline at equal environment steps: PPO fine-tuning of an MLP-BC policy with action chunking (a
`robo train dp --set policy=mlp` run). The BC MLP is the Gaussian actor's mean (iteration 0 is the BC
policy; fixed std 0.01 in the normalised chunk space, about 0.3 mm on the positions); an action is a whole
chunk, its first action_horizon steps run open loop with their rewards summed (robo.rl.chunk_env), gamma
0.992 per chunk (0.999 per step), lambda 1, a time-limit failure worth 0, actor lr 1e-5, otherwise ResiP's
PPO settings; 25 chunks of 8 per environment per iteration = one 200-step episode, as a ResiP iteration.
Then BC and the fine-tuned policy are evaluated on the same seeded episodes.
Writes: config.yaml, checkpoint.pt (resume), tensorboard/, learning_curve.csv/.png, policy.pt (an
mlp-chunk base: robo eval dp --base RUN), metrics.json.

examples:
  robo train mlp-ppo --base runs/mlp/bc --out runs/mlp/ppo --set runner.iterations=60
"""


def mlp_ppo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, metavar="RUN", help="a `robo train dp --set policy=mlp` run")


def resip_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, metavar="RUN", help="a `robo train dp` run (the frozen base)")
    p.add_argument("--task", metavar="NAME", help="the base's task, checked against it (optional)")


def train_arguments(p: argparse.ArgumentParser) -> None:
    from sim.assembly.config import PRESETS

    p.add_argument("--task", metavar="NAME", help=f"one of {', '.join(PRESETS)} (sets the config's task; "
                   "pick_peg_2mm is the two-stage task: grasp the standing peg, lift it, insert it)")


def eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True, metavar="RUN", help="a `robo train dp` run folder")


TASKS = [
    Task("dp", "ResiP's diffusion-policy base on precise insertion (behaviour cloning, MuJoCo Panda)",
         train=Stage("robo.tasks.resip.train_dp:train", "robo.tasks.resip.train_dp:DPTrainConfig",
                     TRAIN_DESCRIPTION, train_arguments, out="runs/dp"),
         evaluate=Stage("robo.tasks.resip.eval_dp:evaluate", "robo.tasks.resip.eval_dp:DPEvalConfig",
                        EVAL_DESCRIPTION, eval_arguments, resumable=False,
                        summary="success of a diffusion or MLP-BC base over seeded insertion episodes")),
    Task("resip", "ResiP: residual PPO on a frozen diffusion base (precise insertion, MuJoCo Panda)",
         train=Stage("robo.tasks.resip.train_resip:train", "robo.tasks.resip.train_resip:ResiPTrainConfig",
                     RESIP_DESCRIPTION, resip_arguments, out="runs/resip")),
    Task("mlp-ppo", "ResiP's baseline: PPO fine-tuning of an MLP-BC policy with action chunking",
         train=Stage("robo.tasks.resip.train_mlp_ppo:train",
                     "robo.tasks.resip.train_mlp_ppo:MLPPPOTrainConfig", MLP_PPO_DESCRIPTION,
                     mlp_ppo_arguments, out="runs/mlp_ppo")),
]
