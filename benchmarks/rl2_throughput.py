"""RL² training throughput against sb3-contrib's RecurrentPPO (issue 15): env steps per second
of a whole training run (acting, storage, PPO updates) on the point robot, one torch thread
each, with the same rollout and update budget.

Run from the repository root, with nothing else running:

    python benchmarks/rl2_throughput.py                   # 128k env steps each
    python benchmarks/rl2_throughput.py --steps 256000 --rounds 3

- ours: `gmtl train configs/rl2_point_robot.yaml` (GRU 128, MLP [64], 32 envs, trials of 2
  episodes of 20 steps: 1280 steps per update, 4 epochs of 2 minibatches), evaluation and
  checkpoints off; the rate is the run's own (its training loop, from metrics.csv).
- RecurrentPPO: `MlpLstmPolicy` (LSTM 128, net_arch [64]) on 32 point-robot envs in a
  `DummyVecEnv`, each on its own train goal, n_steps 40 (= one trial per env, 1280 per
  update), n_epochs 4, batch_size 640 (2 minibatches), timed around `learn()`.
Both in this process, alternating which goes first; medians over rounds. Prints steps/s and,
last, `ratio_vs_recurrent_ppo=<ours / theirs>` (the issue's target is >= 3).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from gmtl_rl import runner
from gmtl_rl.config import load_config
from gmtl_rl.envs import make

ROOT = Path(__file__).parents[1]
N_ENVS, TRIAL_STEPS = 32, 40


def ours(steps: int) -> float:
    overrides = [
        f"total_steps={steps}",
        "threads=1",
        "eval.every_steps=0",
        "eval.repeats=1",
        "eval.n_envs=1",
        "checkpoint.every_steps=0",
        f"logging.every_steps={steps}",
    ]
    config = load_config(ROOT / "configs" / "rl2_point_robot.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run = runner.train(config, run_dir=Path(tmp) / "run")
        with open(run / "metrics.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("time_s") and r.get("steps_per_s")]
    last = rows[-1]
    return float(last["step"]) / float(last["time_s"])


def theirs(steps: int) -> float:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    family = make("point-robot")
    tasks = family.train_tasks()
    envs = DummyVecEnv([partial(family.make_env, tasks[i]) for i in range(N_ENVS)])
    model = RecurrentPPO(
        "MlpLstmPolicy",
        envs,
        n_steps=TRIAL_STEPS,
        batch_size=N_ENVS * TRIAL_STEPS // 2,
        n_epochs=4,
        learning_rate=1e-3,
        policy_kwargs={"lstm_hidden_size": 128, "net_arch": [64]},
        seed=0,
        device="cpu",
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    envs.close()
    return model.num_timesteps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=128_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"cpu: {platform.processor() or platform.machine()} ({os.cpu_count()} cores), "
          f"load {os.getloadavg()[0]:.2f}, torch {torch.__version__}, 1 thread each")  # fmt: skip
    rates: dict[str, list[float]] = {"ours": [], "RecurrentPPO": []}
    for r in range(args.rounds):
        order = [("ours", ours), ("RecurrentPPO", theirs)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            rates[name].append(fn(args.steps))
            print(f"  round {r}: {name} {rates[name][-1]:,.0f} steps/s", flush=True)
    o, t = statistics.median(rates["ours"]), statistics.median(rates["RecurrentPPO"])
    print(f"RL² (ours) {o:,.0f} env steps/s, RecurrentPPO {t:,.0f} env steps/s")
    print(f"ratio_vs_recurrent_ppo={o / t:.2f}")


if __name__ == "__main__":
    main()
