"""Run a policy exported with ``reflect export`` in a Gymnasium environment, without reflect installed.

    python examples/run_exported_policy.py runs/<run>/final_model.onnx --episodes 5
    python examples/run_exported_policy.py runs/<run>/final_model.ts.pt --env CartPole-v1 --render

A ``.onnx`` file needs only onnxruntime and numpy; a ``.ts.pt`` (TorchScript) file needs only torch.
Gymnasium runs the environment. The exported policy is a pure function of its inputs::

    action, next_state = policy(obs [B, obs_dim], state [B, state_size])

and every episode starts from a zero state. The file's metadata (``obs_dim``, ``obs_dtype``,
``state_size``, the action's kind and bounds, the env id) says how to call it.
"""

from __future__ import annotations

import argparse
import io
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

Step = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def load_onnx(data: bytes, threads: int) -> tuple[Step, dict[str, Any]]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads  # one thread is fastest for one observation at a time
    session = onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    metadata = json.loads(session.get_modelmeta().custom_metadata_map["reflect_policy"])

    def step(obs: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        action, next_state = session.run(None, {"obs": obs, "state": state})
        return action, next_state

    return step, metadata


def load_torchscript(data: bytes, threads: int) -> tuple[Step, dict[str, Any]]:
    import torch

    torch.set_num_threads(threads)
    extra = {"reflect_policy.json": ""}
    module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    metadata = json.loads(extra["reflect_policy.json"])

    def step(obs: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():  # faster than no_grad for a TorchScript module
            action, next_state = module(torch.from_numpy(obs), torch.from_numpy(state))
        return action.numpy(), next_state.numpy()

    return step, metadata


def load(path: Path, threads: int = 1) -> tuple[Step, dict[str, Any]]:
    """``(step, metadata)`` of an exported file: TorchScript archives are zip files, ONNX ones are not."""
    data = path.read_bytes()
    if zipfile.is_zipfile(io.BytesIO(data)):
        return load_torchscript(data, threads)
    return load_onnx(data, threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", type=Path, help="a .onnx or .ts.pt file written by reflect export")
    parser.add_argument("--env", default=None, help="environment id (default: the one it was trained on)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()

    step, meta = load(args.policy, args.threads)
    env_id = args.env or meta["env_id"]
    env = gym.make(env_id, render_mode="human" if args.render else None)
    obs_dtype = np.dtype(meta["obs_dtype"])
    discrete = meta["action"]["kind"] == "discrete"
    print(f"{args.policy.name}: {meta['export_format']} policy for {env_id} "
          f"(reflect {meta['reflect_version']}), obs_dim {meta['obs_dim']}, "
          f"{meta['action']['kind']} actions, state size {meta['state_size']}")

    latencies: list[float] = []
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + episode)
        state = np.zeros((1, meta["state_size"]), dtype=np.float32)  # a new episode: zero state
        total, length, done = 0.0, 0, False
        while not done:
            start = time.perf_counter()
            action, state = step(np.asarray(obs, dtype=obs_dtype).reshape(1, -1), state)
            latencies.append(time.perf_counter() - start)
            obs, reward, terminated, truncated, _ = env.step(int(action[0]) if discrete else action[0])
            total += float(reward)
            length += 1
            done = terminated or truncated
        print(f"episode {episode}: return {total:.2f}, length {length}")
    env.close()
    micros = np.array(latencies) * 1e6
    print(f"policy step: median {np.median(micros):.1f} us, p99 {np.percentile(micros, 99):.1f} us "
          f"over {len(micros)} steps")


if __name__ == "__main__":
    main()
