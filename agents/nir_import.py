"""A NIR graph as a reflect network, and :func:`from_nir`: an agent that goes on learning from it.

    agent = Reflect.from_nir("policy.nir", "CartPole-v1")           # the critic starts fresh
    agent = Reflect.from_nir(actor_graph, "CartPole-v1", critic=critic_graph, config={...})
    agent.learn(20_000)

:func:`parse_graph` reads a graph of the primitives below into a :class:`NetworkSpec` (plain arrays in
reflect's discrete units); :func:`from_nir` builds the agent around it. Every graph is read by its
structure, as NIR defines it, with forward Euler at the time step ``dt`` (:mod:`reflect.formulas.
continuous_time`); reflect's own metadata (:mod:`reflect.agents.nir_format`) adds only what NIR has no
field for (the observation statistics, the action head, the config) and exact values of numbers that
the conversion would round. The graph must be a chain::

    Input -> [Affine: observation normaliser] -> layer -> layer ... -> Affine|Linear -> [LI] -> Output
    layer:  Affine|Linear -> LIF | CubaLIF | LI -> Threshold | LI -> LI -> Threshold
            (+ Linear|Affine connections from the layer's spikes back into it: recurrence, reset)

* ``LIF`` (``tau, r, v_leak, v_threshold, v_reset``) is reflect's ``lif``: ``beta = 1 - dt / tau``,
  ``theta = v_threshold``, its input scaled by ``r`` and ``v_leak`` added as a bias. NIR's ``LIF`` resets
  to ``v_reset``, reflect's by subtracting ``theta``; the two agree for a memoryless membrane
  (``tau = dt``, ``beta = 0``) and otherwise only until a membrane overshoots its threshold, so a
  leaky ``LIF`` is refused unless ``approximate_reset``.
* ``CubaLIF`` is reflect's ``cuba``: ``alpha = 1 - dt / tau_syn``, ``beta = 1 - dt / tau_mem``, input
  scaled by ``r w_in (1 - alpha)``; the reset as for ``LIF``.
* ``LI -> Threshold`` is a ``lif`` neuron without a reset of its own; a ``Linear`` from the spikes back
  into the ``LI`` carries the reset (:func:`reflect.formulas.continuous_time.reset_feedback`) and any
  recurrence, both exact. ``LI -> LI -> Threshold`` is ``cuba`` (synaptic current, then membrane).
* The readout: the last ``Affine``/``Linear`` (reflect's linear readout), optionally through an ``LI``
  (the leaky readout, ``decay = 1 - dt / tau``).

A graph without reflect's normaliser node runs on raw observations, as it did where it was made
(``normalize.observations`` is off for it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reflect.agents import nir_format
from reflect.agents.checkpointing import load_network_state
from reflect.agents.config import NetworkConfig, ReflectConfig, default_config_path
from reflect.agents.nir_format import NIRImportError
from reflect.config import DEFAULT_ENTRY, deep_merge, from_mapping, load_env_config, to_dict
from reflect.formulas.continuous_time import euler_decay, reset_feedback
from reflect.learning.heads import GaussianHead
from reflect.spiking.models import neuron_model

# two numbers the conversion computes two ways (e.g. a reset weight from beta and theta) count as equal
# within this relative difference; a graph that differs by more is read as it is
MATCH_RTOL = 1e-9
# a time constant this close below dt (a float32 tau = dt, as snnTorch writes one) is tau = dt
TAU_RTOL = 1e-6
# config keys the graph decides (network shape, neuron constants, whether observations are normalised)
GRAPH_KEYS = {
    "network": ("hidden", "neuron", "recurrent", "beta", "theta", "neuron_params", "spread", "per_neuron",
                "encoder", "readout_decay", "current_norm"),
    "normalize": ("observations",),
}


@dataclass
class LayerSpec:
    """One spiking layer in reflect's units: ``y = x @ weight (+ s_prev @ recurrent) + bias``.

    Attributes:
        neuron: ``lif`` or ``cuba``.
        weight: ``[in, out]``; bias: ``[out]``; recurrent: ``[out, out]`` (presynaptic first) or None.
        constants: the model's constants by name, each ``[out]``.
        nodes: the graph nodes it was read from.
    """

    neuron: str
    weight: np.ndarray
    bias: np.ndarray
    recurrent: np.ndarray | None
    constants: dict[str, np.ndarray]
    nodes: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(self.weight.shape[1])


@dataclass
class ReadoutSpec:
    """The readout ``o_t = decay o_{t-1} + (1 - decay) (s @ weight + bias)``: weight ``[in, out]``."""

    weight: np.ndarray
    bias: np.ndarray
    decay: float


@dataclass
class NormalizerSpec:
    """The observation normaliser's statistics (float64 ``[obs_dim]``) and settings."""

    mean: np.ndarray
    var: np.ndarray
    count: int
    clip: float
    epsilon: float


@dataclass
class NetworkSpec:
    """A graph read as a reflect network (see the module docstring)."""

    in_features: int
    layers: list[LayerSpec]
    readout: ReadoutSpec
    normalizer: NormalizerSpec | None
    dt: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def out_features(self) -> int:
        return int(self.readout.weight.shape[1])

    @property
    def neuron(self) -> str:
        return self.layers[0].neuron

    @property
    def recurrent(self) -> bool:
        return any(layer.recurrent is not None for layer in self.layers)

    def describe(self) -> str:
        """E.g. ``4 -> lif[128] -> 2``."""
        sizes = ", ".join(str(layer.size) for layer in self.layers)
        recurrent = " recurrent" if self.recurrent else ""
        return f"{self.in_features} -> {self.neuron}{recurrent}[{sizes}] -> {self.out_features}"


# ---------------------------------------------------------------------------------------------- reading
def read_graph(graph: Any) -> Any:
    """A ``nir.NIRGraph`` as given, or read from a ``.nir`` file path."""
    nir = nir_format.require_nir("NIR import", NIRImportError)
    if isinstance(graph, nir.NIRGraph):
        return graph
    if not isinstance(graph, str | Path):
        raise TypeError(
            f"graph must be a nir.NIRGraph or the path of a .nir file, got {type(graph).__name__}"
        )
    path = Path(graph)
    if not path.exists():
        raise FileNotFoundError(f"NIR graph '{path}' does not exist; check the path")
    if path.is_dir():
        raise NIRImportError(f"'{path}' is a directory; give the path of a .nir file")
    try:
        read = nir.read(path)
    except Exception as error:  # h5py and nir raise many kinds for a file that is not a NIR graph
        reason = " ".join(str(error).split()) or type(error).__name__
        raise NIRImportError(
            f"cannot read '{path}' as a NIR graph ({reason}); give a file written by nir.write "
            "(reflect export --format nir, snnTorch's export_to_nir, ...)"
        ) from error
    if not isinstance(read, nir.NIRGraph):
        raise NIRImportError(f"'{path}' holds a single {type(read).__name__} node, not a NIR graph")
    return read


class _Graph:
    """A flat view of a NIR graph: nodes by name, and each node's predecessors and successors."""

    def __init__(self, nodes: dict[str, Any], edges: list[tuple[str, str]]) -> None:
        self.nodes = nodes
        self.edges = list(dict.fromkeys(edges))
        for a, b in self.edges:
            for end in (a, b):
                if end not in nodes:
                    raise NIRImportError(f"an edge names node '{end}', which the graph does not have")

    def preds(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    def succs(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    def kind(self, name: str) -> str:
        return type(self.nodes[name]).__name__


def _ends(nodes: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The names of the Input and of the Output nodes among ``nodes``."""
    nir = nir_format.require_nir("NIR import", NIRImportError)
    return ([k for k, v in nodes.items() if isinstance(v, nir.Input)],
            [k for k, v in nodes.items() if isinstance(v, nir.Output)])


def _flatten(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The nodes and edges of ``graph`` with every nested graph inlined (its nodes named
    ``outer.inner``), the nested graphs' own input and output nodes contracted away."""
    nir = nir_format.require_nir("NIR import", NIRImportError)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    enter: dict[str, str] = {}
    leave: dict[str, str] = {}
    for name, node in graph.nodes.items():
        full = prefix + str(name)
        if isinstance(node, nir.NIRGraph):
            inner_nodes, inner_edges = _flatten(node, full + ".")
            ins, outs = _ends(inner_nodes)
            if len(ins) != 1 or len(outs) != 1:
                raise NIRImportError(
                    f"subgraph '{full}' has {len(ins)} Input and {len(outs)} Output nodes; reflect reads "
                    "subgraphs of one input and one output"
                )
            nodes.update(inner_nodes)
            edges.extend(inner_edges)
            enter[full], leave[full] = ins[0], outs[0]
        else:
            nodes[full] = node
    for a, b in graph.edges:
        a, b = prefix + str(a), prefix + str(b)
        edges.append((leave.get(a, a), enter.get(b, b)))
    for through in (*enter.values(), *leave.values()):  # contract the nested input/output nodes
        preds = [a for a, b in edges if b == through]
        succs = [b for a, b in edges if a == through]
        edges = [(a, b) for a, b in edges if through not in (a, b)]
        edges.extend((a, c) for a in preds for c in succs)
        del nodes[through]
    return nodes, edges


def _array(node: Any, name: str, attribute: str) -> np.ndarray:
    value = getattr(node, attribute, None)
    if value is None:
        raise NIRImportError(f"node '{name}' has no {attribute}")
    return np.asarray(value, dtype=np.float64)


def _per_neuron(node: Any, name: str, attribute: str, size: int) -> np.ndarray:
    """``node.attribute`` as ``[size]`` float64 (one value broadcast to every neuron)."""
    value = _array(node, name, attribute)
    if value.size == 1:
        return np.full(size, float(value.reshape(-1)[0]))
    if value.size != size:
        raise NIRImportError(
            f"node '{name}' gives {value.size} values of {attribute} for a layer of {size} neurons"
        )
    flat = value.reshape(-1)
    if not np.isfinite(flat).all():
        raise NIRImportError(f"node '{name}' has a non-finite {attribute}")
    return flat


def _matrix(g: _Graph, name: str, rows: int | None, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``weight`` ``[out, in]`` and ``bias`` ``[out]`` (zeros for ``Linear``) of an ``Affine`` or
    ``Linear`` node, checked against the expected shape."""
    node = g.nodes[name]
    kind = g.kind(name)
    if kind not in ("Affine", "Linear"):
        raise NIRImportError(
            f"node '{name}' is a {kind} where reflect expects an Affine or Linear node (every spiking "
            "layer and the readout take their input through one)"
        )
    weight = _array(node, name, "weight")
    if weight.ndim != 2:
        raise NIRImportError(f"node '{name}' has a {weight.ndim}-d weight; reflect reads dense 2-d weights")
    out, inp = weight.shape
    if inp != cols or (rows is not None and out != rows):
        want = f"[{rows if rows is not None else 'N'}, {cols}]"
        raise NIRImportError(f"node '{name}' has weights of shape [{out}, {inp}] where {want} is expected")
    bias = _array(node, name, "bias").reshape(-1) if kind == "Affine" else np.zeros(out)
    if bias.size != out:
        raise NIRImportError(f"node '{name}' has {bias.size} biases for {out} outputs")
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise NIRImportError(f"node '{name}' has non-finite weights")
    return weight, bias


def _decay(node: Any, name: str, attribute: str, size: int, dt: float) -> np.ndarray:
    """The forward-Euler decay ``1 - dt / tau`` of ``node.attribute``, checked to lie in ``[0, 1)``."""
    tau = _per_neuron(node, name, attribute, size)
    if (tau <= 0.0).any():
        raise NIRImportError(f"node '{name}' has {attribute} <= 0")
    if (tau < dt * (1.0 - TAU_RTOL)).any():
        raise NIRImportError(
            f"node '{name}' has {attribute} = {tau.min():g} s, below the time step dt = {dt:g} s: its "
            f"forward-Euler decay 1 - dt/tau would be negative; pass a dt no larger than {tau.min():g}"
        )
    decay = np.maximum(euler_decay(tau, dt), 0.0)  # tau = dt up to rounding: a memoryless state
    if not (decay < 1.0).all():
        raise NIRImportError(
            f"node '{name}' has an {attribute} so long that it does not leak at dt = {dt:g} s; reflect's "
            "decays are below 1 (pass a larger dt)"
        )
    return decay


def _threshold(node: Any, name: str, attribute: str, size: int) -> np.ndarray:
    theta = _per_neuron(node, name, attribute, size)
    if not (theta > 0.0).all():
        raise NIRImportError(f"node '{name}' has a threshold <= 0; reflect's thresholds are > 0")
    return theta


def _zero_leak(node: Any, name: str, size: int) -> None:
    if np.any(_per_neuron(node, name, "v_leak", size) != 0.0):
        raise NIRImportError(
            f"node '{name}' has a v_leak other than 0, which a current-based reflect neuron cannot hold; "
            "fold it into the bias of the node that feeds it"
        )


def _snap(scale: np.ndarray) -> np.ndarray:
    """An input scale that is 1 up to rounding, as exactly 1 (weights then pass unchanged)."""
    return np.where(np.abs(scale - 1.0) <= MATCH_RTOL, 1.0, scale)


def _check_reset(decay: np.ndarray, name: str, kind: str, approximate_reset: bool) -> None:
    if approximate_reset or not (decay > 0.0).any():
        return
    raise NIRImportError(
        f"node '{name}' ({kind}) resets its membrane to v_reset, reflect's neurons by subtracting the "
        "threshold; for a leaky membrane (tau > dt) the spikes differ once a membrane overshoots its "
        "threshold: pass approximate_reset=True (--approximate-reset) to accept that"
    )


def _feedback(g: _Graph, spike: str, target: str, size: int, inside: set[str], entry: str | None
              ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The connections from ``spike`` (the layer's spikes) into ``target``: ``(name, weight, bias)``.
    Every other predecessor of ``target`` must be ``entry`` (its input) or a node of the layer."""
    found = []
    for pred in g.preds(target):
        if pred == entry or pred in inside:
            continue
        if g.preds(pred) != [spike] or g.succs(pred) != [target]:
            raise NIRImportError(
                f"node '{pred}' feeds '{target}' but is neither the layer's input nor a connection from "
                f"the layer's own spikes ('{spike}'); reflect's layers take one input and recurrent "
                "connections from their own spikes"
            )
        weight, bias = _matrix(g, pred, size, size)
        found.append((pred, weight, bias))
    return found


def _is_reset(weight: np.ndarray, bias: np.ndarray, expected: np.ndarray) -> bool:
    """Whether a self-connection is exactly the subtractive reset ``diag(expected)``."""
    if (bias != 0.0).any() or (weight - np.diag(np.diag(weight)) != 0.0).any():
        return False
    return bool(np.allclose(np.diag(weight), expected, rtol=MATCH_RTOL, atol=0.0))


def _only_successor(g: _Graph, name: str, what: str) -> str:
    succs = g.succs(name)
    if len(succs) != 1:
        listed = ", ".join(f"'{s}'" for s in succs) or "none"
        raise NIRImportError(
            f"node '{name}' ({what}) feeds {len(succs)} nodes ({listed}); reflect reads a chain of layers "
            "where each stage feeds the next"
        )
    return succs[0]


def _layer(g: _Graph, entry: str, projection: str, weight: np.ndarray, bias: np.ndarray, dt: float,
           approximate_reset: bool) -> tuple[LayerSpec, str, set[str]]:
    """The spiking layer whose first node is ``entry`` (fed by ``projection``: ``weight`` ``[out, in]``,
    ``bias``): its spec, the node its spikes leave from, and the feedback nodes it owns."""
    size = weight.shape[0]
    kind = g.kind(entry)
    node = g.nodes[entry]

    def constants_of(neuron: str, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        model = neuron_model(neuron)
        for name, value in values.items():
            spec = model.parameter(name)
            bad = [float(x) for x in value if not spec.contains(float(x))]
            if bad:
                raise NIRImportError(
                    f"layer '{entry}': {neuron} constant {name} ({spec.doc}) = {bad[0]:g} is outside "
                    f"{spec.describe()}"
                )
        return values

    def spec(neuron: str, scale: np.ndarray, offset: np.ndarray, recurrent: np.ndarray | None,
             constants: dict[str, np.ndarray], nodes: tuple[str, ...]) -> LayerSpec:
        scale = _snap(scale)
        w = (scale[:, None] * weight).T
        b = scale * bias + offset
        r = None if recurrent is None or not recurrent.any() else recurrent.T
        return LayerSpec(neuron, w, b, r, constants_of(neuron, constants), nodes)

    if kind in ("LIF", "CubaLIF"):
        feedback = _feedback(g, entry, entry, size, set(), projection)
        loops = {name for name, _, _ in feedback}
        total = sum((w for _, w, _ in feedback), np.zeros((size, size)))
        loop_bias = sum((b for _, _, b in feedback), np.zeros(size))
        theta = _threshold(node, entry, "v_threshold", size)
        r = _per_neuron(node, entry, "r", size)
        if kind == "LIF":
            beta = _decay(node, entry, "tau", size, dt)
            _check_reset(beta, entry, kind, approximate_reset)
            scale = r
            offset = _per_neuron(node, entry, "v_leak", size)
            constants = {"beta": beta, "theta": theta}
            neuron = "lif"
        else:
            alpha = _decay(node, entry, "tau_syn", size, dt)
            beta = _decay(node, entry, "tau_mem", size, dt)
            _check_reset(beta, entry, kind, approximate_reset)
            _zero_leak(node, entry, size)
            scale = r * _per_neuron(node, entry, "w_in", size) * (1.0 - alpha)
            offset = np.zeros(size)
            constants = {"alpha": alpha, "beta": beta, "theta": theta}
            neuron = "cuba"
        scale = _snap(scale)
        recurrent = scale[:, None] * total
        return (spec(neuron, scale, offset + scale * loop_bias, recurrent, constants, (projection, entry)),
                entry, loops)

    if kind != "LI":
        raise NIRImportError(
            f"node '{entry}' is a {kind}; reflect reads spiking layers of LIF, CubaLIF, LI -> Threshold "
            "or LI -> LI -> Threshold nodes (ALIF and other models have no reflect counterpart in NIR)"
        )
    first = _only_successor(g, entry, "a leaky state")
    if g.kind(first) == "LI":  # LI (synaptic current) -> LI (membrane) -> Threshold: cuba
        synapse, membrane = entry, first
        spike = _only_successor(g, membrane, "a membrane")
    else:
        synapse, membrane, spike = None, entry, first
    if g.kind(spike) != "Threshold" or g.preds(spike) != [membrane]:
        raise NIRImportError(
            f"node '{membrane}' (LI) feeds '{spike}' ({g.kind(spike)}); a spiking layer of LI nodes "
            "ends in a Threshold node fed by the membrane alone"
        )
    theta = _threshold(g.nodes[spike], spike, "threshold", size)
    mem = g.nodes[membrane]
    beta = _decay(mem, membrane, "tau", size, dt)
    r_mem = _per_neuron(mem, membrane, "r", size)
    expected_reset = reset_feedback(beta, theta)
    inside = {n for n in (synapse, membrane) if n is not None}
    if synapse is None:  # LI -> Threshold: lif, with the reset and any recurrence as feedback
        feedback = _feedback(g, spike, membrane, size, inside, projection)
        scale = _snap(r_mem)
        recurrent = np.zeros((size, size))
        loop_bias = np.zeros(size)
        reset_found = False
        for _, w, b in feedback:
            scaled = scale[:, None] * w
            if not reset_found and _is_reset(scaled, b, expected_reset):
                reset_found = True  # exactly reflect's reset: no recurrent weight left over
                continue
            recurrent += scaled
            loop_bias += b
        if not reset_found:  # a neuron without a reset: reflect's reset undone by a self-connection
            recurrent -= np.diag(expected_reset)
        offset = _per_neuron(mem, membrane, "v_leak", size) + scale * loop_bias
        return (spec("lif", scale, offset, recurrent, {"beta": beta, "theta": theta},
                     (projection, membrane, spike)), spike, {name for name, _, _ in feedback})
    syn = g.nodes[synapse]
    if g.succs(synapse) != [membrane]:
        raise NIRImportError(f"node '{synapse}' (LI) must feed the membrane '{membrane}' alone")
    alpha = _decay(syn, synapse, "tau", size, dt)
    _zero_leak(syn, synapse, size)
    _zero_leak(mem, membrane, size)
    into_membrane = _feedback(g, spike, membrane, size, inside, synapse)
    resets = [w for _, w, b in into_membrane if _is_reset(r_mem[:, None] * w, b, expected_reset)]
    if len(into_membrane) != len(resets) or len(resets) > 1:
        raise NIRImportError(
            f"the membrane '{membrane}' takes connections from the spikes other than one subtractive "
            "reset; reflect's current-based neurons take recurrent input through their synaptic current"
        )
    if not resets and (beta > 0.0).any():
        raise NIRImportError(
            f"the layer '{membrane}' -> '{spike}' has a leaky membrane without a reset connection; "
            "reflect's neurons reset by subtraction (add the self-connection docs/NIR.md describes)"
        )
    into_synapse = _feedback(g, spike, synapse, size, inside, projection)
    scale = _snap(r_mem * _per_neuron(syn, synapse, "r", size) * (1.0 - alpha))
    recurrent = scale[:, None] * sum((w for _, w, _ in into_synapse), np.zeros((size, size)))
    loop_bias = scale * sum((b for _, _, b in into_synapse), np.zeros(size))
    loops = {name for name, _, _ in (*into_synapse, *into_membrane)}
    return (spec("cuba", scale, loop_bias, recurrent, {"alpha": alpha, "beta": beta, "theta": theta},
                 (projection, synapse, membrane, spike)), spike, loops)


def _normalizer(node: Any, name: str, entries: dict[str, Any], size: int) -> NormalizerSpec:
    """The observation normaliser from its node's recorded statistics, checked against its weights."""
    try:
        mean = np.asarray(entries["mean"], dtype=np.float64)
        var = np.asarray(entries["var"], dtype=np.float64)
        spec = NormalizerSpec(mean, var, int(entries["count"]), float(entries["clip"]),
                              float(entries["epsilon"]))
    except (KeyError, TypeError, ValueError) as error:
        raise NIRImportError(f"node '{name}' is marked as reflect's observation normaliser but its "
                             f"statistics are incomplete ({error}); remove its metadata") from error
    weight = _array(node, name, "weight")
    if mean.shape != (size,) or var.shape != (size,) or weight.shape != (size, size):
        raise NIRImportError(f"node '{name}': the normaliser's statistics do not match {size} observations")
    scale = 1.0 / np.sqrt(var + spec.epsilon)
    if not np.allclose(np.diag(weight), scale, rtol=MATCH_RTOL, atol=0.0):
        raise NIRImportError(
            f"node '{name}': its weights are not its recorded statistics 1/sqrt(var + epsilon); the "
            "graph was edited after export: remove the node's metadata to read it as a plain Affine"
        )
    return spec


def parse_graph(graph: Any, *, dt: float | None = None, approximate_reset: bool = False) -> NetworkSpec:
    """Read a NIR graph (or ``.nir`` path) as a reflect network (see the module docstring).

    Args:
        dt: the time step in seconds the graph's time constants are converted at (default: the one
            reflect's export recorded in the graph, else :data:`~reflect.agents.nir_format.DEFAULT_DT`).
        approximate_reset: read a leaky ``LIF`` / ``CubaLIF`` (which resets to ``v_reset``) as reflect's
            neuron (which subtracts its threshold) instead of refusing it.

    Raises:
        NIRImportError: a node, edge or constant reflect has no counterpart for, named with the fix.
    """
    nir_format.require_nir("NIR import", NIRImportError)  # a clear error first when nir is missing
    graph = read_graph(graph)
    metadata = nir_format.decode(graph)
    step = nir_format.check_dt(dt if dt is not None else metadata.get("dt", nir_format.DEFAULT_DT),
                               NIRImportError)
    nodes, edges = _flatten(graph)
    g = _Graph(nodes, edges)
    inputs, outputs = _ends(nodes)
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRImportError(
            f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; a reflect network has "
            "one of each (observations in, action values out)"
        )
    shape = np.asarray(nodes[inputs[0]].input_type["input"]).reshape(-1)
    if shape.size != 1:
        raise NIRImportError(
            f"the Input node has shape {shape.tolist()}; reflect's networks take a flat observation vector"
        )
    in_features = int(shape[0])
    output = outputs[0]
    source = inputs[0]
    current = _only_successor(g, source, "the input")
    normalizer = None
    entries = nir_format.decode(nodes[current])
    if entries.get("role") == nir_format.ROLE_NORMALIZER and g.preds(current) == [source]:
        normalizer = _normalizer(nodes[current], current, entries, in_features)
        source, current = current, _only_successor(g, current, "the observation normaliser")
    layers: list[LayerSpec] = []
    size = in_features
    while True:
        if g.preds(current) != [source]:
            raise NIRImportError(
                f"node '{current}' takes input from {', '.join(repr(p) for p in g.preds(current))}; "
                f"reflect reads a chain where it is fed by '{source}' alone"
            )
        weight, bias = _matrix(g, current, None, size)
        after = _only_successor(g, current, "a projection")
        if after == output:
            readout = ReadoutSpec(weight.T.copy(), bias.copy(), 0.0)
            break
        if g.kind(after) == "LI" and g.succs(after) == [output]:
            readout = _leaky_readout(g, after, weight, bias, step)
            break
        layer, spikes, loops = _layer(g, after, current, weight, bias, step, approximate_reset)
        layers.append(layer)
        forward = [s for s in g.succs(spikes) if s not in loops]
        if len(forward) != 1:
            raise NIRImportError(
                f"the spikes of layer '{spikes}' feed {len(forward)} nodes besides its own connections; "
                "reflect reads a chain where each layer feeds the next"
            )
        if forward[0] == output:
            raise NIRImportError(
                f"the graph's output comes from spiking neurons ('{spikes}'); reflect's readout is not "
                "spiking: end the network with an Affine node (and optionally an LI node)"
            )
        size, source, current = layer.size, spikes, forward[0]
    if not layers:
        raise NIRImportError("the graph has no spiking layer between its input and its readout")
    if {layer.neuron for layer in layers} == {"lif", "cuba"}:
        # one model per network: a lif layer is a cuba layer whose current does not decay (alpha = 0)
        for layer in layers:
            if layer.neuron == "lif":
                layer.neuron = "cuba"
                layer.constants = {"alpha": np.zeros(layer.size), **layer.constants}
    return NetworkSpec(in_features, layers, readout, normalizer, step, metadata)


def _leaky_readout(g: _Graph, name: str, weight: np.ndarray, bias: np.ndarray, dt: float) -> ReadoutSpec:
    node = g.nodes[name]
    size = weight.shape[0]
    decay = _decay(node, name, "tau", size, dt)
    if not np.all(decay == decay[0]):
        raise NIRImportError(f"readout '{name}' has one time constant per output; reflect's readout has one")
    value = float(decay[0])
    exact = nir_format.decode(node).get("decay")  # the decay the export converted, before rounding
    if isinstance(exact, int | float) and math.isclose(float(exact), value, rel_tol=MATCH_RTOL,
                                                       abs_tol=1e-15):
        value = float(exact)
    scale = _snap(_per_neuron(node, name, "r", size))
    offset = _per_neuron(node, name, "v_leak", size)
    return ReadoutSpec((scale[:, None] * weight).T.copy(), scale * bias + offset, value)


# --------------------------------------------------------------------------------------------- building
def _uniform(values: np.ndarray) -> bool:
    return bool(np.all(values.astype(np.float32) == np.float32(values[0])))


def network_config(spec: NetworkSpec) -> dict[str, Any]:
    """The ``network`` (and ``normalize``) config entries that the graph decides."""
    model = neuron_model(spec.neuron)
    per_neuron = not all(_uniform(layer.constants[name]) for layer in spec.layers
                         for name in model.parameter_names)
    first = {name: float(np.float32(spec.layers[0].constants[name][0])) for name in model.parameter_names}
    network = {
        "hidden": [layer.size for layer in spec.layers], "neuron": spec.neuron, "recurrent": spec.recurrent,
        "beta": first["beta"], "theta": first["theta"],
        "neuron_params": {k: v for k, v in first.items() if k not in ("beta", "theta")},
        "spread": {}, "per_neuron": per_neuron, "encoder": "direct", "readout_decay": spec.readout.decay,
        "current_norm": 0.0,  # NIR has no normalisation across a layer's neurons
    }
    normalize: dict[str, Any] = {"observations": spec.normalizer is not None}
    if spec.normalizer is not None:
        normalize["obs_clip"] = spec.normalizer.clip
    return {"network": network, "normalize": normalize}


def network_state(spec: NetworkSpec) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of the :class:`~reflect.spiking.SpikingNetwork` the spec describes (a constant
    the same for every neuron of a layer as one number, which a network of per-neuron constants
    spreads over its neurons when it loads it)."""

    def tensor(value: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))

    state: dict[str, torch.Tensor] = {}
    for k, layer in enumerate(spec.layers):
        state[f"layers.{k}.weight"] = tensor(layer.weight)
        state[f"layers.{k}.bias"] = tensor(layer.bias)
        if spec.recurrent:
            weights = np.zeros((layer.size, layer.size)) if layer.recurrent is None else layer.recurrent
            state[f"layers.{k}.recurrent_weight"] = tensor(weights)
        for name, values in layer.constants.items():
            state[f"layers.{k}.{name}"] = tensor(np.asarray(values[0]) if _uniform(values) else values)
    state["readout.weight"] = tensor(spec.readout.weight)
    state["readout.bias"] = tensor(spec.readout.bias)
    return state


def _describes(saved: Any, spec: NetworkSpec) -> bool:
    """Whether a saved ``network`` config builds the graph's network (its shape, model, recurrence,
    readout decay, and constants of the shape the graph's values need); the values themselves, learned
    ones included, come from the graph."""
    try:
        config = from_mapping(NetworkConfig, saved)
    except ValueError:
        return False
    per_neuron = config.per_neuron or bool(config.spread)
    uniform = all(_uniform(values) for layer in spec.layers for values in layer.constants.values())
    return (list(config.hidden) == [layer.size for layer in spec.layers] and config.neuron == spec.neuron
            and config.encoder == "direct" and config.readout_decay == spec.readout.decay
            and config.current_norm == 0.0
            and (config.recurrent or not spec.recurrent) and (per_neuron or uniform))


def _base_config(metadata: Mapping[str, Any], env_id: str | None) -> dict[str, Any]:
    """The config the graph was exported with (same env), else the tuned config of ``env_id``."""
    saved = metadata.get("config")
    if isinstance(saved, dict) and metadata.get("env_id") == env_id:
        return saved
    return load_env_config(default_config_path(), env_id or DEFAULT_ENTRY)


def _user_config(config: ReflectConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    mapping = to_dict(config) if isinstance(config, ReflectConfig) else dict(config)
    if isinstance(config, ReflectConfig):  # a whole config: only what the graph does not decide
        for section, keys in GRAPH_KEYS.items():
            for key in keys:
                mapping.get(section, {}).pop(key, None)
        return mapping
    for section, keys in GRAPH_KEYS.items():
        given = mapping.get(section)
        if isinstance(given, Mapping):
            clash = [key for key in keys if key in given]
            if clash:
                raise NIRImportError(
                    f"config key {section}.{clash[0]} is decided by the NIR graph (the network it holds); "
                    "leave it out"
                )
    return mapping


def _check_same_shape(actor: NetworkSpec, critic: NetworkSpec) -> None:
    mismatch = [
        what for what, a, b in (
            ("layer sizes", [x.size for x in actor.layers], [x.size for x in critic.layers]),
            ("neuron model", actor.neuron, critic.neuron), ("recurrence", actor.recurrent, critic.recurrent),
            ("readout decay", actor.readout.decay, critic.readout.decay),
            ("inputs", actor.in_features, critic.in_features),
        ) if a != b
    ]
    if mismatch:
        raise NIRImportError(
            f"the critic graph ({critic.describe()}) differs from the actor graph ({actor.describe()}) in "
            f"its {mismatch[0]}; reflect's critic has the actor's architecture with one output"
        )
    if critic.out_features != 1:
        raise NIRImportError(
            f"the critic graph has {critic.out_features} outputs; a critic has one (the value)"
        )


def from_nir(
    cls: Any,
    graph: Any,
    env: Any,
    *,
    critic: Any = None,
    config: ReflectConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    dt: float | None = None,
    approximate_reset: bool = False,
    verbose: int = 0,
    backend: str | None = None,
) -> Any:
    """An agent of class ``cls`` (:class:`~reflect.agents.Reflect`) whose actor is the NIR ``graph``.

    Args:
        graph: a ``nir.NIRGraph`` or the path of a ``.nir`` file (see the module docstring for what it
            may hold).
        env: an env id or environment, as for ``Reflect(env, ...)``; its observation size must be the
            graph's input and its actions the graph's outputs (``Discrete``: one value per action;
            ``Box``: the Gaussian mean per dimension).
        critic: a second graph of the same architecture with one output, or ``None`` for a fresh critic.
        config: config keys laid over the config the graph was exported with (same env), else the tuned
            config of ``env``; the network's shape, neuron model and constants come from the graph.
        seed, verbose, backend: as for ``Reflect``.
        dt, approximate_reset: see :func:`parse_graph`.

    Returns:
        The agent, its actor (and critic) holding the graph's network, its observation statistics
        (when the graph has reflect's normaliser), ready for ``learn`` or ``save``.
    """
    actor_spec = parse_graph(graph, dt=dt, approximate_reset=approximate_reset)
    critic_spec = None
    if critic is not None:
        critic_spec = parse_graph(critic, dt=dt if dt is not None else actor_spec.dt,
                                  approximate_reset=approximate_reset)
        _check_same_shape(actor_spec, critic_spec)
    env_id = env if isinstance(env, str) else getattr(getattr(env, "spec", None), "id", None)
    metadata = actor_spec.metadata
    base = _base_config(metadata, env_id)
    decided = network_config(actor_spec)
    if base is metadata.get("config") and _describes(base.get("network"), actor_spec):
        decided["network"] = {}  # the exporter's own network config (its spreads, learned flags) holds
    merged = deep_merge(deep_merge(base, _user_config(config)), decided)
    reflect_config = from_mapping(ReflectConfig, merged)
    agent = cls(env, reflect_config, seed=seed, verbose=verbose, backend=backend)
    if agent.obs_dim != actor_spec.in_features:
        raise NIRImportError(
            f"the graph takes {actor_spec.in_features} inputs but {agent.env_id} gives {agent.obs_dim} "
            "observations; import it for the environment it was made for"
        )
    outputs = agent.spaces.num_actions
    if actor_spec.out_features != outputs:
        kind = "action means" if agent.continuous else "actions"
        raise NIRImportError(
            f"the graph has {actor_spec.out_features} outputs but {agent.env_id} needs {outputs} ({kind}); "
            "import it for the environment it was made for"
        )
    with torch.no_grad():
        load_network_state(agent.actor, network_state(actor_spec))
        if critic_spec is not None:
            if agent.critic is None:
                raise NIRImportError(
                    f"learner.third_factor {reflect_config.learner.third_factor!r} has no critic to load "
                    "the critic graph into; leave the critic graph out, or use third_factor td"
                )
            load_network_state(agent.critic, network_state(critic_spec))
        if isinstance(agent.head, GaussianHead) and isinstance(metadata.get("log_std"), list) \
                and len(metadata["log_std"]) == outputs:
            agent.head.log_std.copy_(torch.tensor(metadata["log_std"], dtype=agent.head.log_std.dtype))
    if actor_spec.normalizer is not None and agent.obs_normalizer is not None:
        norm = actor_spec.normalizer
        agent.obs_normalizer.load_state_dict({
            "rms": {"mean": norm.mean, "var": norm.var, "count": norm.count},
            "clip": norm.clip, "epsilon": norm.epsilon,
        })
    agent.run_info["nir_import"] = {
        "network": actor_spec.describe(), "dt": actor_spec.dt, "critic": critic_spec is not None,
        "approximate_reset": bool(approximate_reset),
    }
    return agent
