"""``robo bench resip``: what the ResiP stages cost on this machine, with a baseline in the same run.

Environment steps/s of the assembly scene with one environment against a batch (hold actions, a
Python loop over MjData); the diffusion base's inference per action chunk at DDIM 16 (evaluation)
and DDIM 4 (inside RL) for one environment and a batch, and one BC gradient step, for the quick and
the paper-size U-Nets. Times are process CPU seconds per call (core-seconds, what a loaded machine
cannot inflate) beside wall seconds. With ``--parts table`` (:mod:`robo.bench._resip_table`), the success
of the expert, both bases, ResiP and MLP-BC + PPO per task and randomness level, resumable.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from robo.bench import _resip_table as resip_table
from robo.bench.common import require

HELP = ("ResiP: assembly env steps/s batched vs single; diffusion base ms per chunk at DDIM 16 and 4; "
        "success per task and level of the expert, the bases, ResiP and MLP-BC + PPO")
PARTS = ("costs", "table")
SIZES = {"quick": ([32, 64, 128], 64), "paper": ([256, 512, 1024], 256)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--envs", type=int, default=16, help="the batch of environments and of chunk requests")
    p.add_argument("--steps", type=int, default=50, help="environment steps per measurement")
    p.add_argument("--sizes", default="quick,paper", help=f"U-Net sizes to time, of {', '.join(SIZES)}")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (training and evaluation too)")
    p.add_argument("--rl-envs", default="64,256",
                   help="batches at which to time a residual-RL step (quick base at DDIM 8 + the scene)")
    p.add_argument("--parts", default="costs",
                   help="comma-separated: costs, the timings above (minutes); table, the success table, "
                        "which trains what --runs lacks (hours on a laptop CPU the first time; resumable)")
    resip_table.add_arguments(p)


def _timed(fn: Any, calls: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call."""
    fn()  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls


def env_rates(envs: int, steps: int) -> dict[str, Any]:
    from sim.assembly import AssemblyConfig, AssemblyEnv

    out = {}
    for n in (1, envs):
        env = AssemblyEnv(n, AssemblyConfig(), seed=0)
        env.reset()
        hold = env.hold_action()
        cpu, wall = _timed(lambda env=env, hold=hold: env.step(hold), steps)
        out[f"envs_{n}"] = {"steps_per_cpu_s": n / cpu, "steps_per_wall_s": n / wall}
    batched, single = out[f"envs_{envs}"]["steps_per_cpu_s"], out["envs_1"]["steps_per_cpu_s"]
    out["batched_over_single_per_cpu_s"] = batched / single
    return out


def base_costs(size: str, envs: int) -> dict[str, Any]:
    from robo.rl.diffusion_bc import DDIMSampler, DiffusionBC, DiffusionConfig, build_policy
    from sim.assembly import ACTION_NAMES, OBSERVATION_LAYOUT

    dims, embed = SIZES[size]
    config = DiffusionConfig(down_dims=dims, step_embed_dim=embed)
    obs_dim, act_dim = OBSERVATION_LAYOUT.size, len(ACTION_NAMES)
    policy = build_policy(config, obs_dim, act_dim)
    policy.fit_normalizer(torch.randn(64, obs_dim), torch.randn(64, 1, act_dim))
    out: dict[str, Any] = {"down_dims": dims, "parameters": sum(p.numel() for p in policy.parameters())}
    for steps in (16, 4):
        sampler = DDIMSampler(policy, steps)
        for batch in (1, envs):
            obs = torch.randn(batch, obs_dim)
            cpu, wall = _timed(lambda sampler=sampler, obs=obs: sampler(obs), 3)
            out[f"ddim{steps}_chunk_b{batch}_ms"] = {"cpu": 1e3 * cpu, "wall": 1e3 * wall}
    bc = DiffusionBC(policy, config)
    obs = torch.randn(config.batch_size, obs_dim)
    act = torch.randn(config.batch_size, config.pred_horizon, act_dim)
    cpu, wall = _timed(lambda: bc.train_step(obs, act), 2)
    out[f"train_step_b{config.batch_size}_s"] = {"cpu": cpu, "wall": wall}
    return out


def rl_step_costs(batches: list[int], steps: int = 24, ddim_steps: int = 8) -> dict[str, Any]:
    """Core-seconds per 1,000 environment steps of residual RL at each batch: the quick base's chunk
    queue (DDIM ``ddim_steps``, chunks of 8, so three refills in 24 steps) and the scene's step, apart.
    Whether a bigger batch makes a sample cheaper (the base batches, the MuJoCo loop does not)."""
    from robo.rl.diffusion_bc import ChunkedPolicy, DDIMSampler, DiffusionConfig, build_policy
    from sim.assembly import ACTION_NAMES, OBSERVATION_LAYOUT, AssemblyConfig, AssemblyEnv

    dims, embed = SIZES["quick"]
    policy = build_policy(DiffusionConfig(down_dims=dims, step_embed_dim=embed), OBSERVATION_LAYOUT.size,
                          len(ACTION_NAMES))
    policy.fit_normalizer(torch.randn(64, OBSERVATION_LAYOUT.size), torch.randn(64, 1, len(ACTION_NAMES)))
    out: dict[str, Any] = {}
    for n in batches:
        env = AssemblyEnv(n, AssemblyConfig(), seed=0)
        obs, _ = env.reset()
        base = ChunkedPolicy(DDIMSampler(policy, ddim_steps), n, 8)
        base_cpu = env_cpu = 0.0
        for _ in range(steps):  # the scene holds still: an untrained base's actions are not a task's
            start = time.process_time()
            base(obs)
            middle = time.process_time()
            obs = env.step(env.hold_action())[0]
            base_cpu, env_cpu = base_cpu + middle - start, env_cpu + time.process_time() - middle
        per_k = 1000.0 / (steps * n)
        out[f"envs_{n}"] = {"base_cpu_s_per_1k_steps": base_cpu * per_k,
                            "env_cpu_s_per_1k_steps": env_cpu * per_k,
                            "cpu_s_per_1k_steps": (base_cpu + env_cpu) * per_k}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = [s for s in args.parts.split(",") if s]
    unknown = [s for s in parts if s not in PARTS]
    if unknown or not parts:
        raise ValueError(f"--parts: {args.parts!r} is not a comma-separated choice of {', '.join(PARTS)}")
    require(args, "envs", "steps", "threads")
    table = resip_table.Table(args) if "table" in parts else None  # refuses a bad --runs before any work
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"threads": args.threads}
    if "costs" in parts:
        result |= costs(args)
    if table is not None:
        rows = table.run()
        result["table"] = rows
        result["table_plot"] = str(resip_table.plot(rows, table.root / "success_table.png"))
        print(f"wrote {result['table_plot']}")
    return result


def costs(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise ValueError(f"--sizes: unknown size {unknown[0]!r} (known: {', '.join(SIZES)})")
    try:
        rl_envs = [int(n) for n in args.rl_envs.split(",") if n]
    except ValueError:
        raise ValueError(f"--rl-envs: comma-separated whole numbers, got {args.rl_envs!r}") from None
    if any(n < 1 for n in rl_envs):
        raise ValueError(f"--rl-envs: batches must be >= 1, got {args.rl_envs}")
    result = {"env": env_rates(args.envs, args.steps), "base": {s: base_costs(s, args.envs) for s in sizes},
              "rl_step": rl_step_costs(rl_envs)}
    env = result["env"]
    print(f"env steps/s (CPU): 1 env {env['envs_1']['steps_per_cpu_s']:.0f}, {args.envs} envs "
          f"{env[f'envs_{args.envs}']['steps_per_cpu_s']:.0f}")
    for s, r in result["base"].items():
        batch = r[f"ddim4_chunk_b{args.envs}_ms"]["cpu"]
        print(f"base {s} ({r['parameters'] / 1e6:.1f}M) CPU ms per chunk: DDIM16 "
              f"{r['ddim16_chunk_b1_ms']['cpu']:.0f} (B=1), DDIM4 {r['ddim4_chunk_b1_ms']['cpu']:.0f} (B=1), "
              f"{batch:.0f} (B={args.envs})")
    for name, r in result["rl_step"].items():
        print(f"residual RL, {name}: {r['cpu_s_per_1k_steps']:.2f} core-s per 1k steps (base "
              f"{r['base_cpu_s_per_1k_steps']:.2f}, scene {r['env_cpu_s_per_1k_steps']:.2f})")
    return result
