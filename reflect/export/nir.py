"""Export an agent's actor as a NIR graph, for neuromorphic simulators and hardware.

    reflect export --checkpoint runs/<run>/final_model.pt --format nir [--dt 1e-4]   # -> final_model.nir

    graph = nir_graph(agent, dt=1e-4)                  # a nir.NIRGraph
    path, info = export_nir(agent, "policy.nir")       # written, read back and checked

NIR describes neurons as continuous-time ODEs; reflect's are discrete. Each discrete constant becomes a
time constant at the step ``dt`` by forward Euler (:mod:`reflect.formulas.continuous_time`), the
discretisation snnTorch and Norse import NIR with, so such a simulator at the same ``dt`` runs the same
network (snnTorch's import assumes ``dt = 1e-4`` s, the default here). The graph, for ``lif`` layers::

    input -> normalize (Affine) -> layer0.affine (Affine) -> layer0.lif (LIF) -> ... -> readout (Affine)
          [-> readout_leak (LI)] -> output

* ``normalize``: the frozen observation normaliser ``(x - mean) / sqrt(var + eps)`` as a diagonal
  ``Affine``. NIR has no clip: a reader other than reflect sees the observations unclipped, which equals
  reflect's policy while every normalised observation lies within ``+-normalize.obs_clip``.
* a memoryless layer (``beta = 0``: the tuned configs) is NIR's own ``LIF`` (``tau = dt``, ``r = 1``,
  ``v_reset = 0``) or ``CubaLIF``; its reset cannot matter, since the next step overwrites the membrane.
* a leaky layer (``beta > 0``) resets by subtraction, which NIR's ``LIF`` (reset to ``v_reset``) does
  not express; it is written as the equivalent ``LI`` (membrane) -> ``Threshold`` with a ``Linear``
  self-connection ``diag(-beta theta / (1 - beta))`` from the spikes back into the membrane
  (``reset``); a ``cuba`` layer as ``LI`` (synaptic current) -> ``LI`` -> ``Threshold``.
* recurrent weights: a ``Linear`` from the layer's spikes back into it (``recurrent``).
* a layer with such loops is a subgraph ``layer0`` (input -> neurons -> output, the loops inside), the
  form snnTorch writes and reads a recurrent layer in.

The action head (argmax, or the squashed Gaussian mean) is not a NIR primitive: the graph's output is
the readout (logits, or the mean before squashing), and the head's constants are in the graph's metadata
with the observation statistics and the config (:mod:`reflect.agents.nir_format`), so that
:meth:`Reflect.from_nir <reflect.agents.Reflect.from_nir>` rebuilds the same agent. Refused, with the
reason: ALIF (an adaptive threshold), the ``poisson``, ``posneg`` and ``population`` encoders, an
observation filter bank. ``docs/NIR.md`` has the whole mapping.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reflect import __version__
from reflect.agents import nir_format
from reflect.agents.nir_format import DEFAULT_DT, ROLE_NORMALIZER, ROLE_READOUT, ROLE_RESET
from reflect.atomic_files import write_bytes_atomic
from reflect.config import to_dict
from reflect.export.module import ExportError, check_agent_exportable
from reflect.formulas.continuous_time import euler_tau, reset_feedback
from reflect.formulas.ops import sqrt

SUFFIX = ".nir"
CHECK_TOLERANCE = 0.0  # the graph read back must give the agent's parameters exactly


def require_nir() -> Any:
    """The ``nir`` module, or :class:`ExportError` naming the install command."""
    return nir_format.require_nir("NIR export", ExportError)


def default_output_path(checkpoint: str | Path) -> Path:
    """``run/final_model.pt`` -> ``run/final_model.nir``."""
    path = Path(checkpoint)
    stem = path.name[: -len(".pt")] if path.name.endswith(".pt") else path.stem
    return path.with_name(stem + SUFFIX)


def _check_exportable(agent: Any) -> None:
    from reflect.learning.heads import CategoricalHead, GaussianHead
    from reflect.spiking.encoders import DirectEncoder

    config = agent.config
    encoder = agent.actor.encoder
    if not isinstance(encoder, DirectEncoder):
        reasons = {
            "poisson": "it draws random spikes every step",
            "posneg": "NIR has no rectifier to split signs with",
            "population": "NIR has no Gaussian receptive fields",
        }
        name = config.network.encoder
        reason = reasons.get(name, "NIR has no primitive for it")
        raise ExportError(
            f"network.encoder {name!r} cannot be exported to NIR ({reason}): train with encoder direct "
            "to export to NIR, or export --format onnx / torchscript"
        )
    for layer in agent.actor.spiking_layers:
        if layer.model.name not in ("lif", "cuba"):
            what = "its adaptive threshold has no NIR primitive" if layer.model.name == "alif" else \
                "reflect has no NIR mapping for it"
            raise ExportError(
                f"network.neuron {layer.model.name!r} cannot be exported to NIR ({what}): train with "
                "neuron lif or cuba to export to NIR, or export --format onnx / torchscript"
            )
        if layer.current_norm > 0.0:
            raise ExportError(
                "network.current_norm cannot be exported to NIR (NIR has no normalisation across a "
                "layer's neurons): train with network.current_norm=0 to export to NIR, or export --format "
                "onnx / torchscript"
            )
    check_agent_exportable(agent, "a NIR graph")
    if not isinstance(agent.head, CategoricalHead | GaussianHead):
        raise ExportError(f"action head {type(agent.head).__name__} cannot be exported")


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _constants(layer: Any) -> dict[str, np.ndarray]:
    """The layer's constants by name, each ``[out]`` float64 (a per-layer value repeated)."""
    size = layer.out_features
    return {name: np.broadcast_to(_numpy(value).astype(np.float64), (size,)).copy()
            for name, value in zip(layer.model.parameter_names, layer.constants(), strict=True)}


def _action_metadata(agent: Any) -> dict[str, Any]:
    from reflect.learning.heads import GaussianHead

    head = agent.head
    if isinstance(head, GaussianHead):
        return {"kind": "box", "shape": [head.num_outputs], "low": [float(x) for x in head.low],
                "high": [float(x) for x in head.high], "squash": head.squash,
                "output": "the Gaussian mean before squashing"}
    return {"kind": "discrete", "n": head.num_outputs, "output": "one logit per action (greedy: argmax)"}


def nir_graph(agent: Any, *, dt: float = DEFAULT_DT) -> Any:
    """The actor of ``agent`` (a :class:`~reflect.agents.Reflect`) as a ``nir.NIRGraph`` at time step
    ``dt`` seconds (see the module docstring for the nodes). Raises :class:`ExportError` for what NIR
    cannot express."""
    nir = require_nir()
    dt = nir_format.check_dt(dt, ExportError)
    _check_exportable(agent)
    from reflect.learning.heads import GaussianHead

    actor = agent.actor
    obs_dim = int(actor.in_features)
    nodes: dict[str, Any] = {"input": nir.Input(np.array([obs_dim]))}
    edges: list[tuple[str, str]] = []
    previous = "input"
    normalizer = agent.obs_normalizer
    if normalizer is not None:
        mean, var = np.array(normalizer.rms.mean, dtype=np.float64), np.array(normalizer.rms.var, np.float64)
        scale = 1.0 / sqrt(var + normalizer.epsilon)  # reflect.formulas.normalize without its clip
        nodes["normalize"] = nir.Affine(
            weight=np.diag(scale), bias=-mean * scale,
            metadata=nir_format.encode({
                "role": ROLE_NORMALIZER, "mean": mean.tolist(), "var": var.tolist(),
                "count": int(normalizer.rms.count), "clip": normalizer.clip, "epsilon": normalizer.epsilon,
            }),
        )
        edges.append((previous, "normalize"))
        previous = "normalize"
    for k, layer in enumerate(actor.spiking_layers):
        previous = _add_layer(nir, nodes, edges, f"layer{k}", layer, previous, dt)
    readout = actor.readout
    outputs = int(readout.out_features)
    nodes["readout"] = nir.Affine(weight=np.ascontiguousarray(_numpy(readout.weight).T),
                                  bias=_numpy(readout.bias).copy())
    edges.append((previous, "readout"))
    previous = "readout"
    if readout.decay > 0.0:
        nodes["readout_leak"] = nir.LI(
            tau=np.full(outputs, euler_tau(readout.decay, dt)), r=np.ones(outputs), v_leak=np.zeros(outputs),
            metadata=nir_format.encode({"role": ROLE_READOUT, "decay": readout.decay}),
        )
        edges.append((previous, "readout_leak"))
        previous = "readout_leak"
    nodes["output"] = nir.Output(np.array([outputs]))
    edges.append((previous, "output"))
    space = agent.env.single_observation_space
    entries: dict[str, Any] = {
        "format": nir_format.FORMAT, "format_version": nir_format.FORMAT_VERSION,
        "reflect_version": __version__, "env_id": agent.env_id, "num_timesteps": int(agent.num_timesteps),
        "dt": dt, "discretization": nir_format.DISCRETIZATION, "reset": nir_format.RESET,
        "obs_dtype": "float64" if np.dtype(space.dtype) == np.float64 else "float32",
        "action": _action_metadata(agent), "config": to_dict(agent.config),
    }
    if isinstance(agent.head, GaussianHead):
        entries["log_std"] = [float(x) for x in _numpy(agent.head.log_std).reshape(-1)]
    try:
        metadata = nir_format.encode(entries)
    except TypeError as error:  # e.g. an object in env_kwargs, given through the Python API
        raise ExportError(
            f"the agent's config holds a value the graph's metadata cannot store as JSON ({error}); "
            "give env_kwargs plain values (numbers, strings, lists, mappings) to export to NIR"
        ) from error
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _add_layer(nir: Any, nodes: dict[str, Any], edges: list[tuple[str, str]], name: str, layer: Any,
               previous: str, dt: float) -> str:
    """Add one spiking layer fed by ``previous``: its ``Affine`` node ``{name}.affine``, then its neurons,
    which are a subgraph ``{name}`` (nodes ``input``, ``lif`` / ``cubalif`` / ``synapse``, ``membrane``,
    ``spike``, ``reset``, ``recurrent``, ``output``) when they have connections back into themselves, as
    snnTorch writes a recurrent layer. Returns the node the layer's spikes leave from."""
    size = int(layer.out_features)
    c = _constants(layer)
    ones, zeros = np.ones(size), np.zeros(size)
    beta, theta = c["beta"], c["theta"]
    projection = f"{name}.affine"
    nodes[projection] = nir.Affine(weight=np.ascontiguousarray(_numpy(layer.weight).T),
                                   bias=_numpy(layer.bias).copy())
    edges.append((previous, projection))
    inner: dict[str, Any] = {}
    inner_edges: list[tuple[str, str]] = []
    memoryless = not (beta > 0.0).any()  # the reset cannot matter: NIR's own neuron nodes are exact
    cuba = layer.model.name == "cuba"
    if memoryless and not cuba:
        first = spikes = recurrent_target = "lif"
        inner[spikes] = nir.LIF(tau=euler_tau(beta, dt), r=ones, v_leak=zeros, v_threshold=theta,
                                v_reset=zeros.copy())
    elif memoryless:
        alpha = c["alpha"]
        first = spikes = recurrent_target = "cubalif"
        # r = tau_mem / dt and w_in = (1 - beta) tau_syn / dt: input gain 1 into the current (snnTorch's
        # convention), the membrane's gain 1 - beta taken by w_in
        inner[spikes] = nir.CubaLIF(
            tau_syn=euler_tau(alpha, dt), tau_mem=euler_tau(beta, dt), r=1.0 / (1.0 - beta), v_leak=zeros,
            v_threshold=theta, v_reset=zeros.copy(), w_in=(1.0 - beta) / (1.0 - alpha),
        )
    else:
        first = recurrent_target = "membrane"
        spikes = "spike"
        if cuba:
            alpha = c["alpha"]
            first = recurrent_target = "synapse"
            inner["synapse"] = nir.LI(tau=euler_tau(alpha, dt), r=1.0 / (1.0 - alpha), v_leak=zeros.copy())
            inner_edges.append(("synapse", "membrane"))
        inner["membrane"] = nir.LI(tau=euler_tau(beta, dt), r=ones, v_leak=zeros.copy())
        inner["spike"] = nir.Threshold(threshold=theta)
        inner["reset"] = nir.Linear(weight=np.diag(reset_feedback(beta, theta)),
                                    metadata=nir_format.encode({"role": ROLE_RESET}))
        inner_edges += [("membrane", "spike"), ("spike", "reset"), ("reset", "membrane")]
    if layer.recurrent:
        inner["recurrent"] = nir.Linear(weight=np.ascontiguousarray(_numpy(layer.recurrent_weight).T))
        inner_edges += [(spikes, "recurrent"), ("recurrent", recurrent_target)]
    if not inner_edges:  # no loop: the neuron node sits in the graph itself
        nodes[f"{name}.{spikes}"] = inner[spikes]
        edges.append((projection, f"{name}.{spikes}"))
        return f"{name}.{spikes}"
    inner["input"], inner["output"] = nir.Input(np.array([size])), nir.Output(np.array([size]))
    inner_edges += [("input", first), (spikes, "output")]
    nodes[name] = nir.NIRGraph(nodes=inner, edges=inner_edges)
    edges.append((projection, name))
    return name


def check_graph(graph: Any, agent: Any) -> float:
    """Read ``graph`` back as reflect does (:func:`reflect.agents.nir_import.parse_graph`) and return the
    largest difference from ``agent``'s weights, constants and observation statistics; raises
    :class:`ExportError` when the network read back is another one."""
    from reflect.agents.nir_import import network_state, parse_graph

    spec = parse_graph(graph)
    actor = agent.actor
    problem = None
    if [layer.size for layer in spec.layers] != [layer.out_features for layer in actor.spiking_layers]:
        problem = "its layer sizes"
    elif spec.neuron != actor.spiking_layers[0].model.name:
        problem = "its neuron model"
    elif spec.readout.decay != actor.readout.decay:
        problem = "its readout decay"
    elif (spec.normalizer is None) != (agent.obs_normalizer is None):
        problem = "its observation normaliser"
    if problem is not None:
        raise ExportError(f"the NIR graph read back differs from the policy in {problem}; please report this")
    worst = 0.0
    expected = actor.state_dict()
    for key, value in network_state(spec).items():
        mine = expected.get(key)
        if mine is None:  # a recurrent weight of zeros the policy does not have
            worst = max(worst, float(value.abs().max()))
            continue
        worst = max(worst, float((value.double() - mine.double().expand_as(value)).abs().max()))
    if spec.normalizer is not None:
        rms = agent.obs_normalizer.rms
        worst = max(worst, float(np.abs(spec.normalizer.mean - rms.mean).max()),
                    float(np.abs(spec.normalizer.var - rms.var).max()))
        if spec.normalizer.count != rms.count:
            worst = max(worst, float("inf"))
    if worst > CHECK_TOLERANCE:
        raise ExportError(
            f"the NIR graph read back differs from the policy by {worst:.3g}: the exporter or the reader "
            "converts something differently; please report this with the checkpoint"
        )
    return worst


def node_types(graph: Any, prefix: str = "") -> dict[str, str]:
    """Every node of ``graph`` but its nested graphs' own input and output nodes, by dotted name (a
    node ``lif`` of the subgraph ``layer0`` is ``layer0.lif``), with its NIR type."""
    found: dict[str, str] = {}
    for name, node in graph.nodes.items():
        if hasattr(node, "nodes") and hasattr(node, "edges"):
            inner = node_types(node, f"{prefix}{name}.")
            found.update({key: kind for key, kind in inner.items()
                          if kind not in ("Input", "Output")})
        else:
            found[f"{prefix}{name}"] = type(node).__name__
    return found


def nir_bytes(graph: Any) -> bytes:
    """The ``.nir`` (HDF5) file of ``graph``."""
    nir = require_nir()
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    return buffer.getvalue()


def export_nir(agent: Any, path: str | Path, *, dt: float = DEFAULT_DT, overwrite: bool = False,
               check: bool = True) -> tuple[Path, dict[str, Any]]:
    """Write ``agent``'s actor to ``path`` as a NIR graph (atomically); returns the path and a summary:
    ``dt``, ``nodes`` (name -> NIR type), ``metadata`` (the graph's reflect entries) and, if ``check``,
    ``check_max_abs_diff`` (:func:`check_graph` on the file's bytes read back)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExportError(f"'{path}' already exists; pass --force to overwrite it or choose another --out")
    graph = nir_graph(agent, dt=dt)
    data = nir_bytes(graph)
    info: dict[str, Any] = {
        "dt": float(dt), "nodes": node_types(graph),
        "metadata": nir_format.decode(graph), "env_id": agent.env_id,
    }
    if check:
        nir = require_nir()
        import h5py

        with h5py.File(io.BytesIO(data), "r") as handle:  # the file's bytes, as nir.read gets them
            read = nir.dict2NIRNode({**nir.serialization.hdf2dict(handle["node"]), "type_check": True})
        info["check_max_abs_diff"] = check_graph(read, agent)
    write_bytes_atomic(path, data)
    return path, info


def export_checkpoint_nir(checkpoint: str | Path, *, out: str | Path | None = None, dt: float = DEFAULT_DT,
                          overwrite: bool = False, check: bool = True) -> tuple[Path, dict[str, Any]]:
    """Export the actor saved in a ``reflect`` checkpoint (default output: beside it, ``.nir``)."""
    from reflect.agents.reflect_agent import Reflect
    from reflect.checkpoints import load_checkpoint

    require_nir()
    nir_format.check_dt(dt, ExportError)
    checkpoint = Path(checkpoint)
    target = default_output_path(checkpoint) if out is None else Path(out)
    if target.exists() and target.resolve() == checkpoint.resolve():
        raise ExportError(f"the output '{target}' is the checkpoint itself; choose another --out")
    if target.exists() and not overwrite:
        raise ExportError(f"'{target}' already exists; pass --force to overwrite it or choose another --out")
    agent = Reflect.from_checkpoint(load_checkpoint(checkpoint), restore_env=False)
    try:
        return export_nir(agent, target, dt=dt, overwrite=True, check=check)
    finally:
        agent.env.close()
