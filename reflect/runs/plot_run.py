"""``reflect plot RUN_DIR``: the learning curve and a spike raster of a run folder.

* ``learning_curve.png`` from ``episodes.csv`` and ``evaluations.csv``;
* ``spike_raster.png``: the trained actor (``final_model.pt``, else ``best_model.pt``, else the newest
  checkpoint) driving one deterministic evaluation episode, every hidden layer's spikes over its first
  ``raster_steps`` steps.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from reflect.agents.reflect_agent import Reflect
from reflect.checkpoints import load_checkpoint
from reflect.envs import make_single_env
from reflect.runs.evaluation import EVAL_SEED_OFFSET, run_episodes
from reflect.runs.plots import plot_learning_curve, plot_spike_raster
from reflect.runs.summary import read_episodes_csv, read_evaluations_csv


def newest_model(run_dir: Path) -> Path | None:
    """``final_model.pt``, else ``best_model.pt``, else the checkpoint with the most steps."""
    for name in ("final_model.pt", "best_model.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    steps = [
        (int(m.group(1)), p)
        for p in (run_dir / "checkpoints").glob("step_*.pt")
        if (m := re.fullmatch(r"step_(\d+)\.pt", p.name))
    ]
    return max(steps)[1] if steps else None


def record_spikes(agent: Reflect, env_id: str, steps: int, seed: int) -> list[np.ndarray]:
    """Each actor layer's spikes ``[T, H_l]`` over the first ``steps`` steps of one evaluation episode."""
    policy = agent.policy()
    frames: list[list[np.ndarray]] = [[] for _ in policy.spikes]

    def keep(p: object) -> None:
        for frame, spikes in zip(frames, policy.spikes, strict=True):
            frame.append(spikes[0].numpy().copy())

    env = make_single_env(env_id)
    try:
        run_episodes(policy, env, 1, seed, max_steps=steps, on_step=keep)
    finally:
        env.close()
    return [np.stack(frame) for frame in frames]


def plot_run(run_dir: Path | str, raster_steps: int = 200) -> list[Path]:
    """Write ``learning_curve.png`` and ``spike_raster.png`` into ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory '{run_dir}' does not exist")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    env_id = summary.get("env")
    title = f"{env_id or run_dir.name} - REFLECT (seed {summary.get('seed', '?')})"
    evaluations = (
        read_evaluations_csv(run_dir / "evaluations.csv") if (run_dir / "evaluations.csv").is_file() else []
    )
    episodes = read_episodes_csv(run_dir / "episodes.csv") if (run_dir / "episodes.csv").is_file() else []
    written = [
        plot_learning_curve(
            evaluations,
            episodes,
            run_dir / "learning_curve.png",
            title=title,
            threshold=summary.get("reward_threshold"),
        )
    ]
    model = newest_model(run_dir)
    if model is not None:
        agent = Reflect.from_checkpoint(load_checkpoint(model), restore_env=False)
        env_id = env_id or agent.env_id
        spikes = record_spikes(agent, str(env_id), raster_steps, int(agent.seed) + EVAL_SEED_OFFSET)
        agent.env.close()
        neuron = agent.config.network.neuron.upper()
        names = [f"actor layer {i} ({s.shape[1]} {neuron})" for i, s in enumerate(spikes)]
        written.append(
            plot_spike_raster(
                spikes,
                run_dir / "spike_raster.png",
                title=f"{env_id}: actor spikes, one evaluation episode ({model.name})",
                layer_names=names,
            )
        )
    return written
