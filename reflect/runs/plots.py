"""PNG figures for a run folder: the learning curve and spike rasters.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no display, no global figure
state), and written atomically, so a viewer never sees a half-written image.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reflect.atomic_files import write_bytes_atomic
from reflect.runs.summary import EvaluationRecord

__all__ = ["ROLLING_EPISODES", "plot_learning_curve", "plot_spike_raster"]

ROLLING_EPISODES = 20
DPI = 120
_EPISODE_COLOR = "tab:blue"
_EVALUATION_COLOR = "tab:orange"
_THRESHOLD_COLOR = "tab:green"


def plot_learning_curve(
    evaluations: Sequence[EvaluationRecord],
    episodes: Sequence[tuple[int, float, int]],
    out_path: Path | str,
    *,
    title: str,
    threshold: float | None,
) -> Path:
    """Plot returns against environment steps and save a PNG to ``out_path``; returns the path.

    Training episodes (``(step, return, length)``) appear as faint dots with a rolling mean over
    the last 20 episodes; evaluations as their mean return with a +- one std band; ``threshold``, if
    given, as a dashed horizontal line.

    Raises:
        ValueError: there are neither evaluations nor episodes.
    """
    if not evaluations and not episodes:
        raise ValueError("no evaluations or episodes to plot yet; plot after the first episode ends")
    figure = Figure(figsize=(7, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()

    if episodes:
        ordered = sorted(episodes, key=lambda episode: episode[0])
        steps = np.array([episode[0] for episode in ordered], dtype=float)
        returns = np.array([episode[1] for episode in ordered], dtype=float)
        axes.plot(steps, returns, linestyle="none", marker=".", markersize=3, alpha=0.25,
                  color=_EPISODE_COLOR, label="training episodes")
        axes.plot(steps, _rolling_mean(returns, ROLLING_EPISODES), color=_EPISODE_COLOR, linewidth=1.5,
                  label=f"training, mean of last {ROLLING_EPISODES}")
    if evaluations:
        ordered_evaluations = sorted(evaluations, key=lambda record: record.step)
        steps = np.array([record.step for record in ordered_evaluations], dtype=float)
        mean = np.array([record.mean_return for record in ordered_evaluations], dtype=float)
        std = np.array([record.std_return for record in ordered_evaluations], dtype=float)
        axes.fill_between(steps, mean - std, mean + std, color=_EVALUATION_COLOR, alpha=0.2, linewidth=0)
        axes.plot(steps, mean, color=_EVALUATION_COLOR, marker="o", markersize=3, linewidth=1.5,
                  label="evaluation mean ± std")
    if threshold is not None:
        axes.axhline(threshold, color=_THRESHOLD_COLOR, linestyle="--", linewidth=1,
                     label=f"threshold {threshold:g}")

    axes.set_xlabel("environment steps")
    axes.set_ylabel("return")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _save(figure, out_path)


def plot_spike_raster(
    spikes: Sequence[np.ndarray],
    out_path: Path | str,
    *,
    title: str,
    layer_names: Sequence[str] | None = None,
) -> Path:
    """Plot one raster panel per layer (neuron index against step, a mark per spike) and save a PNG.

    ``spikes[l]`` is a ``[T, H_l]`` array of 0/1 (or bool) for layer ``l`` over the same ``T`` steps.
    Panels are stacked, sized roughly by layer width, titled with the layer's mean firing rate
    (spikes per neuron per step). Returns the path.

    Raises:
        ValueError: no layers or no steps, an array that is not 2-D or holds values other than 0/1,
            layers with different numbers of steps, a layer without neurons, or ``layer_names`` of the
            wrong length.
    """
    if len(spikes) == 0:
        raise ValueError("no spike recordings to plot; pass one [steps, neurons] array per layer")
    names = [f"layer {index}" for index in range(len(spikes))] if layer_names is None else list(layer_names)
    if len(names) != len(spikes):
        raise ValueError(f"got {len(names)} layer names for {len(spikes)} layers; give one name per layer")
    rasters = [_check_raster(np.asarray(layer), name) for layer, name in zip(spikes, names, strict=True)]
    steps = rasters[0].shape[0]
    for raster, name in zip(rasters, names, strict=True):
        if raster.shape[0] != steps:
            raise ValueError(
                f"layer '{name}' has {raster.shape[0]} steps but '{names[0]}' has {steps}; "
                "pass recordings over the same steps"
            )
    if steps == 0:
        raise ValueError("the spike recordings have no steps yet; record at least one step")

    widths = [raster.shape[1] for raster in rasters]
    ratios = [max(width, max(widths) / 4) for width in widths]  # wide layers taller, narrow ones readable
    height = min(1.2 + 1.8 * len(rasters), 12.0)
    figure = Figure(figsize=(7, height))
    FigureCanvasAgg(figure)
    panels = figure.subplots(len(rasters), 1, sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": ratios})[:, 0]
    for axes, raster, name in zip(panels, rasters, names, strict=True):
        time, neuron = np.nonzero(raster)
        width = raster.shape[1]
        axes.plot(time, neuron, linestyle="none", marker="|", color="black",
                  markersize=max(1.0, min(6.0, 240.0 / width)), markeredgewidth=0.8)
        axes.set_xlim(-0.5, steps - 0.5)
        axes.set_ylim(-0.5, width - 0.5)
        axes.set_ylabel("neuron")
        rate = float(raster.mean())
        axes.set_title(f"{name}: {width} neurons, mean rate {rate:.3f} spikes/step", fontsize="small")
    panels[-1].set_xlabel("step")
    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, out_path)


def _check_raster(raster: np.ndarray, name: str) -> np.ndarray:
    if raster.ndim != 2:
        raise ValueError(
            f"spikes for layer '{name}' must be a [steps, neurons] array, got shape {raster.shape}"
        )
    if raster.shape[1] == 0:
        raise ValueError(f"layer '{name}' has no neurons; leave it out of the raster")
    if not np.all((raster == 0) | (raster == 1)):
        raise ValueError(f"spikes for layer '{name}' must be 0/1 values; threshold or binarize them first")
    return raster.astype(bool)


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (fewer at the start)."""
    sums = np.cumsum(np.concatenate(([0.0], values)))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def _save(figure: Figure, out_path: Path | str) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    path = Path(out_path)
    write_bytes_atomic(path, buffer.getvalue())
    return path
