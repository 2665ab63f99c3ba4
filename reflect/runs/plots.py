"""PNG figures for a run folder: the learning curve, spike rasters and hidden-state traces.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no display, no global figure
state), and written atomically, so a viewer never sees a half-written image.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reflect.atomic_files import write_bytes_atomic
from reflect.runs.summary import EvaluationRecord

__all__ = [
    "ROLLING_EPISODES",
    "TRACES_SHOWN",
    "plot_hidden_state",
    "plot_learning_curve",
    "plot_spike_raster",
]

ROLLING_EPISODES = 20
TRACES_SHOWN = 8  # lines per panel of plot_hidden_state: the ones with the largest variance
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


def plot_hidden_state(
    observations: np.ndarray,
    states: Sequence[np.ndarray] | np.ndarray,
    state_names: Sequence[str],
    out_path: Path | str,
    *,
    title: str,
    threshold: float | np.ndarray | None = None,
) -> Path:
    """Plot a layer's hidden states under the observations that drove them, and save a PNG.

    ``observations`` is ``[T, obs_dim]``: the observation at each of ``T`` steps. ``states[k]`` is
    ``[T, H]``: hidden state ``state_names[k]`` (e.g. ``"v"``, ``"a"``) of the layer's ``H`` neurons
    over the same steps (a ``[S, T, H]`` array works too). The top panel draws every observation
    dimension if there are at most 8, else the 8 with the largest variance; below it, one panel per
    state draws the 8 neurons whose trace of that state varies most, each line labelled with its index
    (a neuron keeps its colour in every panel).
    ``threshold`` (the firing threshold: a number, or one per neuron, whose mean is drawn and the
    legend says so) is a dashed line on the membrane panel, the state named ``"v"``. Returns the path.

    Raises:
        ValueError: ``observations`` not 2-D or without dimensions, no states or a state not 2-D,
            ``state_names`` of the wrong length, step counts that differ, no steps, no neurons or a
            different number of them in two states, or a ``threshold`` with no ``"v"`` state to draw on.
    """
    obs = np.asarray(observations, dtype=float)
    if obs.ndim != 2:
        raise ValueError(
            f"observations must be a [steps, obs_dim] array, got shape {obs.shape}; "
            "reshape a single dimension with .reshape(-1, 1)"
        )
    if obs.shape[1] == 0:
        raise ValueError("the observations have no dimensions; pass at least one observation value per step")
    if isinstance(states, np.ndarray) and states.ndim != 3:
        raise ValueError(
            f"states must be one [steps, neurons] array per state or one [states, steps, neurons] array, "
            f"got one array of shape {states.shape}; wrap a single state in a list"
        )
    if len(states) == 0:
        raise ValueError("no hidden states to plot; pass one [steps, neurons] array per state")
    names = list(state_names)
    if len(names) != len(states):
        raise ValueError(
            f"got {len(names)} state names for {len(states)} states; give one name per state "
            "(the neuron model's states, e.g. ('v', 'a') for ALIF)"
        )
    traces = [np.asarray(state, dtype=float) for state in states]
    steps = obs.shape[0]
    for trace, name in zip(traces, names, strict=True):
        if trace.ndim != 2:
            raise ValueError(f"state '{name}' must be a [steps, neurons] array, got shape {trace.shape}")
        if trace.shape[0] != steps:
            raise ValueError(
                f"state '{name}' has {trace.shape[0]} steps but the observations have {steps}; "
                "record both over the same steps"
            )
        if trace.shape[1] != traces[0].shape[1]:
            raise ValueError(
                f"state '{name}' has {trace.shape[1]} neurons but '{names[0]}' has {traces[0].shape[1]}; "
                "pass the states of one layer"
            )
    if steps == 0:
        raise ValueError("the recordings have no steps yet; record at least one step")
    neurons = traces[0].shape[1]
    if neurons == 0:
        raise ValueError("the layer has no neurons; there is no hidden state to plot")
    line: tuple[int, float, str] | None = None  # (panel of the membrane, level, legend)
    if threshold is not None:
        if "v" not in names:
            raise ValueError(
                f"a threshold was given but no state is named 'v' (the membrane) among {names}; "
                "pass threshold=None"
            )
        thresholds = np.asarray(threshold, dtype=float).reshape(-1)
        if thresholds.size == 0:
            raise ValueError("threshold is empty; pass a number, one value per neuron, or None")
        level = float(thresholds.mean())
        per_neuron = thresholds.size > 1 and not np.all(thresholds == thresholds[0])
        legend = (f"threshold θ (mean of {thresholds.size} neurons) {level:.3g}" if per_neuron
                  else f"threshold θ = {level:.3g}")
        line = (names.index("v"), level, legend)

    figure = Figure(figsize=(9, min(1.0 + 2.2 * (1 + len(traces)), 14.0)))
    FigureCanvasAgg(figure)
    panels = figure.subplots(1 + len(traces), 1, sharex=True, squeeze=False)[:, 0]
    time = np.arange(steps)

    shown = _most_varied(obs)
    axes = panels[0]
    for column in shown:
        axes.plot(time, obs[:, column], linewidth=1.2, label=f"obs[{column}]")
    axes.set_title(f"observation: {_which(len(shown), obs.shape[1], 'dimensions')}", fontsize="small")
    axes.set_ylabel("observation")
    _side_legend(axes)

    chosen = [_most_varied(trace) for trace in traces]
    union = sorted({column for columns in chosen for column in columns})
    # one colour per neuron in every panel: tab20's ten dark hues first, then their light twins
    palette = colormaps["tab20"]
    hues = [*range(0, 20, 2), *range(1, 20, 2)]
    color = {column: palette(hues[rank % 20]) for rank, column in enumerate(union)}
    for index, (axes, trace, name, shown) in enumerate(zip(panels[1:], traces, names, chosen, strict=True)):
        for column in shown:
            axes.plot(time, trace[:, column], linewidth=1.0, color=color[column], label=f"neuron {column}")
        if line is not None and index == line[0]:
            axes.axhline(line[1], color="black", linestyle="--", linewidth=1, label=line[2])
        axes.set_title(f"state {name}: {_which(len(shown), neurons, 'neurons')}", fontsize="small")
        axes.set_ylabel(name)
        _side_legend(axes)

    for axes in panels:
        axes.grid(alpha=0.3)
        axes.set_xlim(-0.5, max(steps - 0.5, 0.5))
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


def _most_varied(values: np.ndarray, count: int = TRACES_SHOWN) -> list[int]:
    """Columns of ``values`` ``[T, N]``: all of them if at most ``count``, else the ``count`` with the
    largest variance over the steps (non-finite values count as 0), in index order."""
    if values.shape[1] <= count:
        return list(range(values.shape[1]))
    spread = np.var(np.where(np.isfinite(values), values, 0.0), axis=0)
    return sorted(int(column) for column in np.argsort(-spread, kind="stable")[:count])


def _which(shown: int, total: int, what: str) -> str:
    return f"all {total} {what}" if shown == total else f"{shown} of {total} {what} (largest variance)"


def _side_legend(axes: Any) -> None:
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small", borderaxespad=0.0)


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
