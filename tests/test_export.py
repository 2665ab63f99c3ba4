"""Export parity: the TorchScript and ONNX policies act like the PyTorch agent over whole episodes.

Each case trains an agent briefly (so weights and observation statistics are not the initial ones),
records 1,000 steps of real episodes run by the agent's own deterministic inference path
(``agent.policy().act``, and ``agent.predict`` beside it), then replays the recorded observations through
the exported file and compares actions (Discrete: identical; Box: max abs difference <= 1e-5) and the
network state at every step (spikes identical). Negative controls show the comparison can fail.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from recording import Recording, record

from reflect.agents import Reflect
from reflect.cli import main
from reflect.export import ExportError, build_policy_module, export_policy, load_exported, state_layout

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # torch 2.13 on TorchScript

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "run_exported_policy.py"
STEPS = 1000
PREDICT_STEPS = 250  # agent.predict (eager PyTorch, slower) is compared over the first steps only
TOLERANCE = 1e-5

CASES: dict[str, tuple[str, dict[str, Any], int]] = {
    # the tuned defaults: one memoryless LIF layer of 128, direct encoder, linear readout
    "cartpole": ("CartPole-v1", {}, 1000),
    "pendulum": ("Pendulum-v1", {}, 1000),
    # two ALIF layers, recurrent, membrane memory, leaky readout, population encoder (the array backend)
    "alif-recurrent": ("Pendulum-v1", {"network": {
        "hidden": [32, 16], "neuron": "alif", "recurrent": True, "beta": 0.7, "readout_decay": 0.5,
        "encoder": "population"}}, 300),
    # two recurrent LIF layers with per-neuron constants, posneg encoder, leaky readout
    "lif-recurrent": ("CartPole-v1", {"network": {
        "hidden": [32, 32], "recurrent": True, "beta": 0.6, "per_neuron": True, "readout_decay": 0.3,
        "encoder": "posneg"}}, 300),
}


def _record(agent: Reflect, env_id: str, steps: int = STEPS, seed: int = 11) -> Recording:
    return record(agent, env_id, steps, seed, predict_steps=PREDICT_STEPS)


def _replay(step: Any, initial_state: Any, rec: Recording, *, reset: bool = True, steps: int = STEPS
            ) -> tuple[np.ndarray, np.ndarray]:
    """Run ``step(obs [1, D], state) -> (action, state)`` over the first ``steps`` recorded observations,
    starting from a zero state at every episode start (unless not ``reset``)."""
    actions, states = [], []
    state = initial_state(1)
    for obs, start in zip(rec.obs[:steps], rec.starts[:steps], strict=True):
        if start and reset:
            state = initial_state(1)
        action, state = step(obs[None], state)
        actions.append(np.asarray(action)[0])
        states.append(np.asarray(state)[0].copy())
    return np.array(actions), np.array(states)


def _eager_step(module: torch.nn.Module) -> Any:
    def step(obs: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        with torch.no_grad():
            action, next_state = module(torch.from_numpy(obs), torch.as_tensor(state))
        return action.numpy(), next_state.numpy()

    return step


def _eager_initial(module: Any) -> Any:
    return lambda batch: module.initial_state(batch).numpy()


def _action_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _assert_parity(rec: Recording, actions: np.ndarray, states: np.ndarray) -> dict[str, float]:
    layout = state_layout(rec.agent.actor)
    if rec.agent.continuous:
        assert actions.dtype == np.float32
        assert _action_diff(actions, rec.actions) <= TOLERANCE
        predicted = rec.predicted.reshape(-1, *actions.shape[1:])
        assert _action_diff(actions[:PREDICT_STEPS], predicted) <= TOLERANCE
    else:
        assert actions.dtype == np.int64
        np.testing.assert_array_equal(actions, rec.actions)
        np.testing.assert_array_equal(actions[:PREDICT_STEPS], rec.predicted)
    assert states.shape == rec.states.shape == (STEPS, layout[-1]["stop"])
    assert float(np.abs(states - rec.states).max()) <= TOLERANCE
    for entry in layout:  # no spike flipped anywhere
        if entry["name"].endswith(".s"):
            cols = slice(entry["start"], entry["stop"])
            np.testing.assert_array_equal(states[:, cols], rec.states[:, cols])
    return {"action": _action_diff(actions, rec.actions), "state": float(np.abs(states - rec.states).max())}


# --------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def recordings() -> dict[str, Recording]:
    class Lazy(dict):  # train and record each case once, on first use
        def __missing__(self, name: str) -> Recording:
            env_id, config, train_steps = CASES[name]
            agent = Reflect(env_id, config, seed=0).learn(train_steps)
            self[name] = _record(agent, env_id)
            return self[name]

    return Lazy()


@pytest.fixture(scope="module")
def exported(recordings: dict[str, Recording], tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("exported")

    class Lazy(dict):
        def __missing__(self, key: tuple[str, str]) -> Path:
            name, fmt = key
            if fmt == "onnx":
                for package in ("onnx", "onnxscript", "onnxruntime"):
                    pytest.importorskip(package)
            suffix = ".ts.pt" if fmt == "torchscript" else ".onnx"
            path = folder / f"{name}{suffix}"
            if key == ("cartpole", "onnx"):  # through the CLI, with a fixed batch of 1
                checkpoint = recordings[name].agent.save(folder / "cartpole.pt")
                args = ["--checkpoint", str(checkpoint), "--format", "onnx", "--batch-size", "1"]
                assert main(["export", *args, "--out", str(path)]) == 0
            else:
                export_policy(recordings[name].agent, path, fmt)
            self[key] = path
            return path

    return Lazy()


# ----------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize(("case", "fmt"), [
    (case, fmt) for case in CASES for fmt in ("torchscript", "onnx")
    if (case, fmt) != ("lif-recurrent", "onnx")  # each ONNX export takes seconds; its ops are covered
])
def test_exported_policy_matches_agent_over_1000_steps(case: str, fmt: str, recordings: Any,
                                                       exported: Any) -> None:
    rec = recordings[case]
    assert rec.starts.sum() >= 2  # the replay crosses episode boundaries (state resets)
    policy = load_exported(exported[case, fmt])
    assert policy.format == fmt
    actions, states = _replay(policy.step, policy.initial_state, rec)
    _assert_parity(rec, actions, states)


@pytest.mark.parametrize("config", [
    {"network": {"hidden": [24], "beta": 0.5, "learn_beta": True, "learn_theta": True,
                 "readout_decay": 0.6}},
    {"network": {"hidden": [24, 24], "neuron": "alif", "beta": 0.8, "per_neuron": True}},
    {"network": {"hidden": [24], "neuron": "cuba", "beta": 0.3, "recurrent": True,
                 "neuron_params": {"alpha": 0.7}}},
    {"network": {"hidden": [24, 16], "beta": 0.5, "current_norm": 2.0}},
], ids=["lif-learned-constants", "alif-per-neuron", "cuba-recurrent", "lif-current-norm"])
def test_eager_module_matches_agent_for_more_configurations(config: dict) -> None:
    """Configurations beyond the exported cases (every registered neuron model), through the module."""
    agent = Reflect("Pendulum-v1", config, seed=1).learn(300)
    rec = _record(agent, "Pendulum-v1")
    module = build_policy_module(agent)
    _assert_parity(rec, *_replay(_eager_step(module), _eager_initial(module), rec))


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_batched_streams_equal_single_streams(fmt: str, recordings: Any, exported: Any) -> None:
    """A batch of 3 streams gives each stream what a batch of 1 gives (a dynamic batch dimension)."""
    rec = recordings["alif-recurrent"]
    obs = rec.obs[:60].reshape(20, 3, -1)
    policy = load_exported(exported["alif-recurrent", fmt])
    state = policy.initial_state(3)
    singles = [policy.initial_state(1) for _ in range(3)]
    for t in range(20):
        actions, state = policy.step(obs[t], state)
        for k in range(3):
            single_action, singles[k] = policy.step(obs[t, k:k + 1], singles[k])
            # a batch may take another matrix-product kernel: equal up to the last bit
            np.testing.assert_allclose(actions[k], single_action[0], rtol=0, atol=TOLERANCE)
            np.testing.assert_allclose(state[k], singles[k][0], rtol=0, atol=TOLERANCE)


# ------------------------------------------------------------------------------ negative controls
def test_parity_check_fails_for_a_perturbed_weight(recordings: Any) -> None:
    for name in ("pendulum", "cartpole"):
        rec = recordings[name]
        module = build_policy_module(rec.agent)
        _assert_parity(rec, *_replay(_eager_step(module), _eager_initial(module), rec))
        module.layers[0].packed[0, 0] += 0.05  # one synapse of the first layer: states differ
        with pytest.raises(AssertionError):
            _assert_parity(rec, *_replay(_eager_step(module), _eager_initial(module), rec))
    module = build_policy_module(recordings["pendulum"].agent)
    module.readout.packed[-1, 0] += 1e-3  # the readout's bias: every action moves
    actions, _ = _replay(_eager_step(module), _eager_initial(module), recordings["pendulum"], steps=300)
    assert _action_diff(actions, recordings["pendulum"].actions[:300]) > TOLERANCE


def test_parity_check_fails_without_state_reset(recordings: Any, exported: Any) -> None:
    rec = recordings["alif-recurrent"]  # a network with memory; Pendulum episodes end every 200 steps
    policy = load_exported(exported["alif-recurrent", "torchscript"])
    actions, _ = _replay(policy.step, policy.initial_state, rec, steps=400)
    assert _action_diff(actions, rec.actions[:400]) <= TOLERANCE
    actions, _ = _replay(policy.step, policy.initial_state, rec, steps=400, reset=False)
    assert _action_diff(actions, rec.actions[:400]) > 1e-3


# --------------------------------------------------------------------------------------- metadata
def test_metadata_describes_inputs_outputs_and_state(recordings: Any, exported: Any) -> None:
    for name in ("pendulum", "alif-recurrent", "cartpole"):
        policy = load_exported(exported[name, "torchscript"])
        meta = policy.metadata
        agent = recordings[name].agent
        assert meta["format"] == "reflect-exported-policy" and meta["export_format"] == "torchscript"
        assert meta["env_id"] == CASES[name][0] and meta["reflect_version"]
        assert meta["obs_dim"] == agent.spaces.obs_dim and meta["obs_dtype"] == "float32"
        layout = meta["state_layout"]
        assert layout[0]["start"] == 0 and layout[-1]["stop"] == meta["state_size"]
        assert all(a["stop"] == b["start"] for a, b in itertools.pairwise(layout))
        if agent.continuous:
            assert meta["action"] == {"kind": "box", "shape": [1], "dtype": "float32", "low": [-2.0],
                                      "high": [2.0], "squash": "tanh"}
        else:
            assert meta["action"]["kind"] == "discrete" and meta["action"]["n"] == 2
        assert policy.initial_state(4).shape == (4, meta["state_size"])
    layout = load_exported(exported["alif-recurrent", "torchscript"]).metadata["state_layout"]
    names = [entry["name"] for entry in layout]
    assert names == ["layers.0.v", "layers.0.a", "layers.0.s", "layers.1.v", "layers.1.a", "layers.1.s",
                     "readout.o"]


def test_torchscript_file_loads_with_torch_alone(exported: Any) -> None:
    extra = {"reflect_policy.json": ""}
    module = torch.jit.load(str(exported["pendulum", "torchscript"]), _extra_files=extra)
    meta = json.loads(extra["reflect_policy.json"])
    state = module.initial_state(2)
    assert state.shape == (2, meta["state_size"]) and not state.any()
    action, next_state = module(torch.zeros(2, 3), state)
    assert action.shape == (2, 1) and next_state.shape == state.shape


def test_poisson_encoder_is_refused_by_name() -> None:
    agent = Reflect("CartPole-v1", {"network": {"hidden": [8], "encoder": "poisson"}}, seed=0)
    with pytest.raises(ExportError, match="encoder 'poisson'"):
        build_policy_module(agent)


# -------------------------------------------------------------------------------------------- CLI
def test_cli_exports_beside_the_checkpoint_and_refuses_to_overwrite(
        tmp_path: Path, recordings: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rec = recordings["cartpole"]
    checkpoint = rec.agent.save(tmp_path / "final_model.pt")
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript"]) == 0
    out = tmp_path / "final_model.ts.pt"
    assert out.exists() and "wrote" in capsys.readouterr().out
    _assert_parity(rec, *_replay(load_exported(out).step, load_exported(out).initial_state, rec))
    before = out.read_bytes()
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--force"]) == 0


def test_cli_onnx_with_fixed_batch(exported: Any) -> None:
    policy = load_exported(exported["cartpole", "onnx"])  # written by `reflect export --batch-size 1`
    meta = policy.metadata
    assert meta["export_format"] == "onnx" and meta["env_id"] == "CartPole-v1"
    assert meta["batch_size"] == 1 and meta["inputs"][0]["shape"] == [1, 4] and meta["onnx_opset"] >= 17
    assert meta["action"] == {"kind": "discrete", "n": 2, "shape": [], "dtype": "int64"}
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        policy.step(np.zeros((2, 4), dtype=np.float32))


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing.pt"
    assert main(["export", "--checkpoint", str(missing), "--format", "torchscript"]) == 2
    assert "does not exist" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    assert main(["export", "--checkpoint", str(corrupt), "--format", "torchscript"]) == 2
    assert "corrupt or not a reflect checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--checkpoint", str(corrupt), "--format", "tflite"])
    assert exit_info.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxscript" else real_find_spec(name, *a))
    assert main(["export", "--checkpoint", str(corrupt), "--format", "onnx"]) == 2
    assert 'pip install "reflect-rl[export]"' in capsys.readouterr().err


# --------------------------------------------------------------------------------- stand-alone use
def _run_blocked(code: str, blocked: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where importing any of ``blocked`` fails."""
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)


def test_example_runs_onnx_without_torch_or_reflect(exported: Any) -> None:
    path = exported["pendulum", "onnx"]
    code = (f"sys.argv = ['run_exported_policy.py', {str(path)!r}, '--episodes', '1', '--seed', '3']\n"
            f"import runpy; runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n")
    result = _run_blocked(code, ["torch", "reflect"])
    assert result.returncode == 0, result.stderr
    assert "Pendulum-v1" in result.stdout and "return" in result.stdout


def test_example_runs_torchscript_without_reflect_or_onnxruntime(exported: Any) -> None:
    path = exported["cartpole", "torchscript"]
    code = (f"sys.argv = ['run_exported_policy.py', {str(path)!r}, '--episodes', '2']\n"
            f"import runpy; runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n")
    result = _run_blocked(code, ["reflect", "onnxruntime"])
    assert result.returncode == 0, result.stderr
    assert "CartPole-v1" in result.stdout


def test_runtime_helper_needs_no_torch_for_onnx(exported: Any) -> None:
    path = exported["pendulum", "onnx"]
    code = ("from reflect.export.runtime import load_exported\n"
            f"policy = load_exported({str(path)!r})\n"
            "action, state = policy.step([1.0, 0.0, 0.5])\n"
            "print(action.shape, state.shape)\n")
    result = _run_blocked(code, ["torch"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1,) (1, 256)"
