"""Learning-curve and spike-raster figures: real, non-blank PNG files and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from reflect.runs.plots import plot_learning_curve, plot_spike_raster
from reflect.runs.summary import EvaluationRecord

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
