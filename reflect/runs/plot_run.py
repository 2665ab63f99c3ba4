"""``reflect plot RUN_DIR``: the learning curve, a spike raster and hidden-state traces of a run folder.

* ``learning_curve.png`` from ``episodes.csv`` and ``evaluations.csv``;
* ``spike_raster.png``: the trained actor (``final_model.pt``, else ``best_model.pt``, else the newest
  checkpoint) driving one deterministic evaluation episode, every hidden layer's spikes over its first
  ``raster_steps`` steps;
* ``hidden_state.png``: the same steps of the same episode (one recording, :func:`record_episode`), what
  the network remembers: the observations the actor received, then each hidden state of its first
  spiking layer (the neuron model's ``states``: LIF ``v``, ALIF ``v, a``, CUBA ``i, v``) for the 8
  neurons whose trace varies most, with the firing threshold ``theta`` on the membrane ``v``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from reflect.agents.reflect_agent import Reflect
from reflect.checkpoints import load_checkpoint
from reflect.envs import make_single_env
from reflect.runs.evaluation import EVAL_SEED_OFFSET, run_episodes
from reflect.runs.plots import plot_hidden_state, plot_learning_curve, plot_spike_raster
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


class EpisodeRecording(NamedTuple):
    """The actor over ``T`` steps of one evaluation episode, each entry taken at the same step."""

    spikes: list[np.ndarray]
    """Each actor layer's spikes ``[T, H_l]``."""
    observations: np.ndarray
    """The observation the actor received at each step, ``[T, obs_dim]`` (as the environment gave it)."""
    states: np.ndarray
    """The first spiking layer's hidden states after each step, ``[S, T, H_0]``, in the order of its
    neuron model's ``states`` (``layer.model.states``)."""


class _ObservationTap:
    """``env`` passed through, keeping every observation it hands out: reset's, then each step's."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.seen: list[np.ndarray] = []

    def reset(self, **kwargs: Any) -> tuple[Any, Any]:
        obs, info = self.env.reset(**kwargs)
        self.seen.append(np.array(obs, dtype=float).reshape(-1))
        return obs, info

    def step(self, action: Any) -> tuple[Any, ...]:
        obs, *rest = self.env.step(action)
        self.seen.append(np.array(obs, dtype=float).reshape(-1))
        return (obs, *rest)


def record_episode(agent: Reflect, env_id: str, steps: int, seed: int) -> EpisodeRecording:
    """Spikes, observations and first-layer states over the first ``steps`` steps of one deterministic
    evaluation episode (``env.reset(seed=seed)``, the env built with the run's observation filter and
    ``env_kwargs``) of ``agent``'s actor."""
    policy = agent.policy()
    first = policy.engine.layer_buffers[0]
    frames: list[list[np.ndarray]] = [[] for _ in policy.spikes]
    states: list[np.ndarray] = []

    def keep(p: object) -> None:
        for frame, spikes in zip(frames, policy.spikes, strict=True):
            frame.append(spikes[0].numpy().copy())
        states.append(first["h"][:, 0].detach().cpu().numpy().copy())  # h is [S, B, H]: stream 0

    env = _ObservationTap(make_single_env(env_id, **agent.config.env_arguments))  # the run's env arguments
    try:
        run_episodes(policy, env, 1, seed, max_steps=steps, on_step=keep)
    finally:
        env.env.close()
    # the actor received reset's observation at step 0 and step t-1's at step t (the last one is unused)
    return EpisodeRecording(
        spikes=[np.stack(frame) for frame in frames],
        observations=np.stack(env.seen[: len(states)]),
        states=np.stack(states, axis=1),
    )


def record_spikes(agent: Reflect, env_id: str, steps: int, seed: int) -> list[np.ndarray]:
    """Each actor layer's spikes ``[T, H_l]`` over the first ``steps`` steps of one evaluation episode."""
    return record_episode(agent, env_id, steps, seed).spikes


def plot_run(run_dir: Path | str, raster_steps: int = 200) -> list[Path]:
    """Write ``learning_curve.png``, and with a model ``spike_raster.png`` and ``hidden_state.png``, into
    ``run_dir``; returns their paths."""
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
        recording = record_episode(agent, str(env_id), raster_steps, int(agent.seed) + EVAL_SEED_OFFSET)
        agent.env.close()
        neuron = agent.config.network.neuron.upper()
        names = [f"actor layer {i} ({s.shape[1]} {neuron})" for i, s in enumerate(recording.spikes)]
        written.append(
            plot_spike_raster(
                recording.spikes,
                run_dir / "spike_raster.png",
                title=f"{env_id}: actor spikes, one evaluation episode ({model.name})",
                layer_names=names,
            )
        )
        layer = agent.actor.spiking_layers[0]
        states = layer.model.states
        model_constants = dict(zip(layer.model.parameter_names, layer.constants(), strict=True))
        theta = model_constants["theta"].detach().cpu().numpy() if "theta" in model_constants else None
        written.append(
            plot_hidden_state(
                recording.observations,
                recording.states,
                states,
                run_dir / "hidden_state.png",
                title=f"{env_id} - {layer.model.name.upper()} layer 1: {', '.join(states)}",
                threshold=theta,
            )
        )
    return written
