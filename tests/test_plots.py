"""Learning-curve, spike-raster and hidden-state figures: real, non-blank PNG files and clear errors;
``plot_run`` on a real run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from reflect.agents.config import load_reflect_config
from reflect.agents.reflect_agent import Reflect
from reflect.checkpoints import load_checkpoint
from reflect.envs import make_single_env
from reflect.runs.evaluation import EVAL_SEED_OFFSET
from reflect.runs.plot_run import plot_run, record_episode, record_spikes
from reflect.runs.plots import plot_hidden_state, plot_learning_curve, plot_spike_raster
from reflect.runs.summary import EvaluationRecord
from reflect.runs.trainer import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(image[..., :3].var()) > 1e-4  # not a blank canvas
    return image


def _episodes(n: int) -> list[tuple[int, float, int]]:
    rng = np.random.default_rng(0)
    steps = np.cumsum(rng.integers(10, 200, size=n))
    return [(int(s), float(i + rng.normal(0, 5)), 20) for i, s in enumerate(steps)]


def test_learning_curve_png(tmp_path: Path) -> None:
    evaluations = [EvaluationRecord(1000 * k, 50.0 * k, 10.0, 100.0) for k in range(1, 8)]
    out = plot_learning_curve(evaluations, _episodes(60), tmp_path / "plots" / "curve.png",
                              title="CartPole-v1", threshold=475.0)
    assert out == tmp_path / "plots" / "curve.png"
    image = _check_png(out)
    assert image.shape[:2] == (480, 840)  # figsize (7, 4) at 120 dpi
    assert [p.name for p in out.parent.iterdir()] == ["curve.png"]


def test_learning_curve_with_only_one_kind_of_data(tmp_path: Path) -> None:
    _check_png(plot_learning_curve([], _episodes(5), tmp_path / "a.png", title="episodes", threshold=None))
    only_eval = [EvaluationRecord(500, 3.0, 1.0, 10.0)]
    _check_png(plot_learning_curve(only_eval, [], tmp_path / "b.png", title="one", threshold=2.0))


def test_learning_curve_needs_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no evaluations or episodes to plot yet"):
        plot_learning_curve([], [], tmp_path / "c.png", title="t", threshold=1.0)
    assert not (tmp_path / "c.png").exists()


def test_spike_raster_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    spikes = [(rng.random((80, 64)) < 0.1).astype(np.float32), rng.random((80, 8)) < 0.5]
    names = ["hidden 1", "hidden 2"]
    _check_png(plot_spike_raster(spikes, tmp_path / "raster.png", title="spikes", layer_names=names))


def test_spike_raster_silent_layer_still_draws(tmp_path: Path) -> None:
    _check_png(plot_spike_raster([np.zeros((10, 4))], tmp_path / "silent.png", title="silent"))


@pytest.mark.parametrize(
    ("spikes", "names", "message"),
    [
        ([], None, "no spike recordings"),
        ([np.zeros(5)], None, r"must be a \[steps, neurons\] array"),
        ([np.zeros((5, 3)), np.zeros((6, 3))], None, "has 6 steps but 'layer 0' has 5"),
        ([np.zeros((0, 3))], None, "no steps"),
        ([np.zeros((5, 0))], None, "has no neurons"),
        ([np.full((5, 3), 0.5)], None, "must be 0/1"),
        ([np.zeros((5, 3))], ["a", "b"], "2 layer names for 1 layers"),
    ],
)
def test_spike_raster_errors(tmp_path: Path, spikes: list, names: list | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_spike_raster(spikes, tmp_path / "r.png", title="t", layer_names=names)


def test_hidden_state_png_for_one_state(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    observations = rng.normal(size=(60, 4))
    v = np.cumsum(rng.normal(0, 0.3, size=(60, 32)), axis=0)  # LIF: one state, 32 neurons
    out = plot_hidden_state(observations, [v], ("v",), tmp_path / "lif.png", title="LIF layer 1: v",
                            threshold=1.0)
    assert out == tmp_path / "lif.png"
    image = _check_png(out)
    assert image.shape[1] == 1080  # 9 inches at 120 dpi
    assert [p.name for p in tmp_path.iterdir()] == ["lif.png"]


def test_hidden_state_png_for_two_states(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    observations = rng.normal(size=(40, 20))  # more than 8 dimensions: the 8 that vary most are drawn
    states = rng.normal(size=(2, 40, 5))  # ALIF ``[S, T, H]``: fewer than 8 neurons, all drawn
    theta = np.linspace(0.5, 1.5, 5)  # one threshold per neuron: the mean is drawn
    lif = _check_png(plot_hidden_state(observations, [states[0]], ["v"], tmp_path / "one.png", title="t"))
    alif = _check_png(plot_hidden_state(observations, states, ("v", "a"), tmp_path / "two.png",
                                        title="ALIF layer 1: v, a", threshold=theta))
    assert alif.shape[0] > lif.shape[0]  # a panel more
    single = _check_png(plot_hidden_state(observations[:1], states[:, :1], ("v", "a"), tmp_path / "1.png",
                                          title="one step"))
    assert single.shape == alif.shape


@pytest.mark.parametrize(
    ("observations", "states", "names", "threshold", "message"),
    [
        (np.zeros(5), [np.zeros((5, 3))], ["v"], None, r"observations must be a \[steps, obs_dim\] array"),
        (np.zeros((5, 0)), [np.zeros((5, 3))], ["v"], None, "no dimensions"),
        (np.zeros((5, 2)), [], [], None, "no hidden states"),
        (np.zeros((5, 2)), np.zeros((5, 3)), ["v"], None, "wrap a single state in a list"),
        (np.zeros((5, 2)), [np.zeros(5)], ["v"], None, r"state 'v' must be a \[steps, neurons\] array"),
        (np.zeros((5, 2)), [np.zeros((6, 3))], ["v"], None, "'v' has 6 steps but the observations have 5"),
        (np.zeros((5, 2)), [np.zeros((5, 3)), np.zeros((4, 3))], ["v", "a"], None, "'a' has 4 steps"),
        (np.zeros((5, 2)), [np.zeros((5, 3)), np.zeros((5, 4))], ["v", "a"], None, "'a' has 4 neurons"),
        (np.zeros((5, 2)), [np.zeros((5, 3))], ["v", "a"], None, "2 state names for 1 states"),
        (np.zeros((0, 2)), [np.zeros((0, 3))], ["v"], None, "no steps"),
        (np.zeros((5, 2)), [np.zeros((5, 0))], ["v"], None, "no neurons"),
        (np.zeros((5, 2)), [np.zeros((5, 3))], ["i"], 1.0, "no state is named 'v'"),
        (np.zeros((5, 2)), [np.zeros((5, 3))], ["v"], np.zeros(0), "threshold is empty"),
    ],
)
def test_hidden_state_errors(tmp_path: Path, observations: np.ndarray, states: list, names: list,
                             threshold: float | np.ndarray | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_hidden_state(observations, states, names, tmp_path / "h.png", title="t", threshold=threshold)
    assert not (tmp_path / "h.png").exists()


@pytest.fixture(scope="module")
def alif_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder of a few hundred steps (no evaluations, no checkpoints, no plots yet)."""
    run_dir = tmp_path_factory.mktemp("runs") / "alif"
    config = load_reflect_config(
        "CartPole-v1",
        overrides=["network.hidden=[16]", "network.neuron=alif", "train.total_steps=300",
                   "train.eval_every=0", "train.checkpoint_every=0", "train.log_every=100"],
    )
    run_dir.mkdir()
    train("CartPole-v1", config, run_dir, seed=1, progress_bar=False, verbose=0, plots=False)
    return run_dir


def test_plot_run_writes_the_hidden_state_picture(alif_run: Path) -> None:
    written = plot_run(alif_run, raster_steps=40)
    assert [p.name for p in written] == ["learning_curve.png", "spike_raster.png", "hidden_state.png"]
    for path in written:
        _check_png(path)


def test_one_recording_holds_spikes_observations_and_states_of_the_same_steps(alif_run: Path) -> None:
    agent = Reflect.from_checkpoint(load_checkpoint(alif_run / "final_model.pt"), restore_env=False)
    agent.env.close()
    seed = int(agent.seed) + EVAL_SEED_OFFSET
    recording = record_episode(agent, "CartPole-v1", 40, seed)
    steps = recording.observations.shape[0]
    assert 1 <= steps <= 40 and recording.observations.shape == (steps, 4)
    assert recording.states.shape == (2, steps, 16)  # ALIF (v, a), one episode, 16 neurons
    assert [s.shape for s in recording.spikes] == [(steps, 16)]
    # the actor received reset's observation first
    env = make_single_env("CartPole-v1")
    first, _ = env.reset(seed=seed)
    env.close()
    np.testing.assert_allclose(recording.observations[0], first, rtol=1e-6)
    # a neuron spikes exactly when its membrane reached the adaptive threshold theta + beta_a * a, at
    # the same step: the states and the spikes come from one step
    layer = agent.actor.spiking_layers[0]
    v, a = recording.states
    excess = v - (float(layer.theta) + float(layer.beta_a) * a)
    spiked = recording.spikes[0].astype(bool)
    assert spiked.any() and (~spiked).any()
    assert np.all(excess[spiked] >= -1e-5) and np.all(excess[~spiked] < 1e-5)
    # record_spikes keeps its behaviour: the same spikes, one array per layer
    again = record_spikes(agent, "CartPole-v1", 40, seed)
    assert len(again) == 1 and np.array_equal(again[0], recording.spikes[0])
