"""A pure-torch, inference-only copy of an agent's policy: ``(obs, state) -> (action, next_state)``.

:func:`build_policy_module` bakes everything the policy needs into one ``nn.Module``
(:class:`PolicyModule`): the observation statistics, the actor's weights and neuron constants, and the
action head's constants, all as buffers. Its arithmetic is the project's own formulas, called on tensors:
the normaliser (:mod:`reflect.formulas.normalize`), the neuron model's ``reset``/``step``/``excess``
(:mod:`reflect.spiking.models`), the leaky readout (:mod:`reflect.formulas.leaky`) and the Gaussian
squash (:mod:`reflect.formulas.gaussian`). It is exportable to ONNX as it is and to TorchScript by tracing
its layers (:mod:`reflect.export.torchscript`)::

    action, next_state = module(obs, state)       # obs [B, obs_dim], state [B, state_size]

* ``obs``: raw observations (float32, or float64 when the environment's observations are float64);
  the module normalises them with the agent's frozen statistics.
* ``state``: float32 ``[B, state_size]``, the network state of each stream, laid out as
  :func:`state_layout` says (per hidden layer the model's states, e.g. ``v`` or ``v, a``, then ``s``, the
  last spikes; then the readout ``o`` when the readout leaks). A new episode starts from zeros: pass
  ``initial_state(B)`` (or zero the rows of the streams whose episode begins).
* ``action``: the deterministic action - ``Discrete``: int64 ``[B]`` (argmax of the logits); ``Box``:
  float32 ``[B, A]`` in the bounds (the Gaussian mean, squashed and scaled like the agent's head).

It computes as the agent's compiled engine does: currents ``[x, s_prev, 1] @ packed`` and every
element-wise formula in float64, states rounded to float32 when stored. The summation order inside the
matrix products differs (BLAS against the engine's row order), at float64 precision, so a spike flips
only if a membrane lands within about 1e-15 of its threshold; the parity tests check actions and
states over whole episodes.
"""

# No ``from __future__ import annotations`` here: TorchScript reads the annotations at run time.
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reflect import __version__
from reflect.formulas.current_norm import current_norm_apply, current_norm_statistics
from reflect.formulas.gaussian import SQUASH_CODES, squash
from reflect.formulas.leaky import leaky_integrate
from reflect.formulas.normalize import normalize

EXPORT_FORMAT = "reflect-exported-policy"
EXPORT_FORMAT_VERSION = 1


class ExportError(ValueError):
    """The policy cannot be exported; the message names the option and what to do instead."""


class _Normalize(nn.Module):
    """The agent's observation normalisation (:func:`reflect.formulas.normalize.normalize`) in float64,
    then float32."""

    enabled: torch.jit.Final[bool]
    clip: torch.jit.Final[float]
    epsilon: torch.jit.Final[float]
    mean: Tensor
    var: Tensor

    def __init__(self, mean: np.ndarray | None, var: np.ndarray | None, clip: float, epsilon: float,
                 obs_dim: int) -> None:
        super().__init__()
        self.enabled = mean is not None
        self.register_buffer("mean", torch.as_tensor(
            np.zeros(obs_dim) if mean is None else mean, dtype=torch.float64).clone())
        self.register_buffer("var", torch.as_tensor(
            np.ones(obs_dim) if var is None else var, dtype=torch.float64).clone())
        self.clip, self.epsilon = float(clip), float(epsilon)

    def forward(self, obs: Tensor) -> Tensor:
        if not self.enabled:
            return obs.to(torch.float32)
        x = normalize(obs.to(torch.float64), self.mean, self.var, self.epsilon, self.clip)
        return x.to(torch.float32)


class _Encoder(nn.Module):
    """The deterministic encoders: ``direct``, ``posneg`` and ``population``."""

    kind: torch.jit.Final[str]
    width: torch.jit.Final[float]
    centers: Tensor

    def __init__(self, kind: str, centers: Tensor | None = None, width: float = 1.0) -> None:
        super().__init__()
        self.kind = kind
        self.width = float(width)
        self.register_buffer("centers", torch.zeros(1) if centers is None else centers.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "posneg":
            return torch.cat([x.clamp(min=0.0), (-x).clamp(min=0.0)], dim=-1)
        if self.kind == "population":
            z = (x.unsqueeze(-1) - self.centers) / self.width
            return torch.exp(-0.5 * z.square()).flatten(-2)
        return x


class _Layer(nn.Module):
    """One spiking layer of any registered model; reads its slice of the flat state (the model's states,
    then ``s``), computes in float64 and returns the spikes and its new slice (float32)."""

    packed: Tensor

    def __init__(self, layer: Any, start: int) -> None:
        super().__init__()
        self.model = layer.model
        self.hidden = int(layer.out_features)
        self.start = start
        self.recurrent = bool(layer.recurrent)
        self.current_norm = float(layer.current_norm)
        self.width = (self.model.num_states + 1) * self.hidden  # columns of the flat state it holds
        self.register_buffer("packed", layer.packed.detach().to(torch.float64).clone())
        for name, value in zip(self.model.parameter_names, layer.constants(), strict=True):
            self.register_buffer(name, value.detach().to(torch.float64).clone())

    def forward(self, x: Tensor, state: Tensor, ones: Tensor) -> tuple[Tensor, Tensor]:
        h, i = self.hidden, self.start
        states = self.model.num_states
        s_prev = state[:, i + states * h:i + (states + 1) * h].to(torch.float64)
        parts = [x.to(torch.float64), s_prev, ones] if self.recurrent else [x.to(torch.float64), ones]
        y = torch.mm(torch.cat(parts, dim=1), self.packed)
        if self.current_norm > 0.0:
            y = current_norm_apply(y, *current_norm_statistics(y, self.current_norm))
        hp = tuple(state[:, i + k * h:i + (k + 1) * h].to(torch.float64) for k in range(states))
        p = tuple(getattr(self, name) for name in self.model.parameter_names)
        reset = self.model.reset(hp, s_prev, p)
        new = self.model.step(hp, s_prev, reset, y, p)
        s = (self.model.excess(new, p) > 0.0).to(torch.float32)
        return s, torch.cat([*(v.to(torch.float32) for v in new), s], dim=1)


class _Readout(nn.Module):
    """The readout ``o = leaky_integrate(o, s @ W + b, d)`` (or ``s @ W + b`` without a leak), float64."""

    packed: Tensor

    def __init__(self, packed: Tensor, decay: float, start: int) -> None:
        super().__init__()
        self.outputs = int(packed.shape[1])
        self.start = start
        self.decay = float(decay)
        self.register_buffer("packed", packed.detach().to(torch.float64).clone())

    def forward(self, s: Tensor, state: Tensor, ones: Tensor) -> Tensor:
        y = torch.mm(torch.cat([s.to(torch.float64), ones], dim=1), self.packed)
        if self.decay == 0.0:
            return y.to(torch.float32)
        o_prev = state[:, self.start:self.start + self.outputs].to(torch.float64)
        return leaky_integrate(o_prev, y, self.decay).to(torch.float32)


class _Head(nn.Module):
    """Deterministic action of the agent's head: argmax (Discrete) or the squashed, scaled mean (Box)."""

    center: Tensor
    scale: Tensor
    bounded: Tensor

    def __init__(self, discrete: bool, center: np.ndarray | None = None, scale: np.ndarray | None = None,
                 bounded: np.ndarray | None = None, squash: str = "tanh") -> None:
        super().__init__()
        self.discrete, self.squash_code = discrete, SQUASH_CODES[squash]
        size = 1 if center is None else len(center)
        f64 = torch.float64
        self.register_buffer("center", torch.zeros(size, dtype=f64) if center is None
                             else torch.as_tensor(center, dtype=f64).clone())
        self.register_buffer("scale", torch.ones(size, dtype=f64) if scale is None
                             else torch.as_tensor(scale, dtype=f64).clone())
        mask = np.ones(size, dtype=bool) if bounded is None else np.asarray(bounded, dtype=bool)
        self.register_buffer("bounded", torch.as_tensor(mask).clone())
        self.all_bounded = bool(mask.all())

    def forward(self, out: Tensor) -> Tensor:
        if self.discrete:
            return torch.argmax(out, dim=1)
        u = out.to(torch.float64)
        action = squash(u, self.center, self.scale, self.squash_code)
        if not self.all_bounded:
            action = torch.where(self.bounded, action, u)
        return action.to(torch.float32)


class PolicyModule(nn.Module):
    """``forward(obs [B, obs_dim], state [B, state_size]) -> (action, next_state [B, state_size])``.

    Built by :func:`build_policy_module`; :meth:`initial_state` gives the zero state of a new episode.
    """

    obs_dim: torch.jit.Final[int]
    state_size: torch.jit.Final[int]
    one: Tensor

    def __init__(self, normalize: _Normalize, encoder: _Encoder, layers: list[_Layer], readout: _Readout,
                 head: _Head, obs_dim: int, state_size: int) -> None:
        super().__init__()
        self.normalize, self.encoder = normalize, encoder
        self.layers = nn.ModuleList(layers)
        self.readout, self.head = readout, head
        self.obs_dim, self.state_size = obs_dim, state_size
        self.register_buffer("one", torch.ones(1, 1, dtype=torch.float64))

    def forward(self, obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        x = self.encoder(self.normalize(obs))
        ones = self.one.expand(x.shape[0], 1)
        parts: list[Tensor] = []
        for layer in self.layers:
            x, layer_state = layer(x, state, ones)
            parts.append(layer_state)
        out = self.readout(x, state, ones)
        if self.readout.decay > 0.0:
            parts.append(out)
        return self.head(out), torch.cat(parts, dim=1)

    @torch.jit.export
    def initial_state(self, batch_size: int) -> Tensor:
        """The zero state ``[batch_size, state_size]`` of streams whose episode begins."""
        return torch.zeros(batch_size, self.state_size, dtype=torch.float32)


# ----------------------------------------------------------------------------------------- building
def _check_exportable(actor: Any) -> None:
    from reflect.spiking.encoders import DirectEncoder, PopulationEncoder, PosNegEncoder

    encoder = actor.encoder
    if not isinstance(encoder, DirectEncoder | PosNegEncoder | PopulationEncoder):
        name = type(encoder).__name__
        if name == "PoissonEncoder":
            raise ExportError(
                "network.encoder 'poisson' cannot be exported: it draws random spikes every step, so the "
                "policy is not a deterministic function of (observation, state); train with encoder "
                "direct, posneg or population to export"
            )
        raise ExportError(f"network.encoder {name} cannot be exported: use direct, posneg or population")


def check_agent_exportable(agent: Any, what: str) -> None:
    """What every export format needs of ``agent`` (``what`` names the file, e.g. ``a NIR graph``): its
    weights on the CPU, and no observation filter bank (it runs in the env wrapper, not the network).

    Raises :class:`ExportError`."""
    if agent.actor.readout.packed.device.type != "cpu":
        raise ExportError("export a policy whose weights are on the CPU (move the agent with .cpu())")
    observation_filter = agent.config.observation_filter
    if observation_filter.enabled:
        raise ExportError(
            f"observation_filter {observation_filter.kind!r} runs in the environment wrapper "
            f"(reflect.envs.ObservationFilterBank), not in the network, so {what} would miss it: deploy "
            "with reflect run, or train with observation_filter.kind=none to export"
        )


def state_layout(actor: Any) -> list[dict[str, Any]]:
    """The flat state's entries in order: ``{"name", "start", "stop"}`` column ranges of ``state``."""
    layout: list[dict[str, Any]] = []
    start = 0
    for i, layer in enumerate(actor.spiking_layers):
        for name in (*layer.model.states, "s"):
            layout.append({"name": f"layers.{i}.{name}", "start": start, "stop": start + layer.out_features})
            start += layer.out_features
    if actor.readout.decay > 0.0:
        size = actor.readout.out_features
        layout.append({"name": "readout.o", "start": start, "stop": start + size})
    return layout


def build_policy_module(agent: Any) -> PolicyModule:
    """The deterministic policy of a :class:`~reflect.agents.Reflect` agent as a :class:`PolicyModule`.

    Raises :class:`ExportError` for what cannot be exported (the Poisson encoder).
    """
    from reflect.learning.heads import CategoricalHead, GaussianHead
    from reflect.spiking.encoders import PopulationEncoder, PosNegEncoder

    actor = agent.actor
    _check_exportable(actor)
    check_agent_exportable(agent, "an exported policy")
    normalizer = agent.obs_normalizer
    obs_dim = int(actor.in_features)
    if normalizer is None:
        normalize_module = _Normalize(None, None, 0.0, 0.0, obs_dim)
    else:
        normalize_module = _Normalize(normalizer.rms.mean, normalizer.rms.var, normalizer.clip,
                                      normalizer.epsilon, obs_dim)
    if isinstance(actor.encoder, PosNegEncoder):
        encoder = _Encoder("posneg")
    elif isinstance(actor.encoder, PopulationEncoder):
        encoder = _Encoder("population", actor.encoder.centers, actor.encoder.width)
    else:
        encoder = _Encoder("direct")
    layers: list[_Layer] = []
    start = 0
    for layer in actor.spiking_layers:
        layers.append(_Layer(layer, start))
        start += layers[-1].width
    readout = _Readout(actor.readout.packed, actor.readout.decay, start)
    if actor.readout.decay > 0.0:
        start += actor.readout.out_features
    head_source = agent.head
    if isinstance(head_source, CategoricalHead):
        head = _Head(True)
    elif isinstance(head_source, GaussianHead):
        head = _Head(False, head_source.center, head_source.scale, head_source.bounded, head_source.squash)
    else:
        raise ExportError(f"action head {type(head_source).__name__} cannot be exported")
    module = PolicyModule(normalize_module, encoder, layers, readout, head, obs_dim, start)
    return module.eval()


def policy_metadata(agent: Any, *, export_format: str, batch_size: int | None) -> dict[str, Any]:
    """What a deployer needs to run the exported file, as plain JSON-able values."""
    from reflect.learning.heads import GaussianHead

    actor = agent.actor
    space = agent.env.single_observation_space
    obs_dtype = "float64" if np.dtype(space.dtype) == np.float64 else "float32"
    layout = state_layout(actor)
    state_size = layout[-1]["stop"] if layout else 0
    head = agent.head
    if isinstance(head, GaussianHead):
        action: dict[str, Any] = {
            "kind": "box", "shape": [head.num_outputs], "dtype": "float32",
            "low": [float(x) for x in head.low], "high": [float(x) for x in head.high],
            "squash": head.squash,
        }
    else:
        action = {"kind": "discrete", "n": head.num_outputs, "shape": [], "dtype": "int64"}
    net = agent.config.network
    batch = "batch" if batch_size is None else batch_size
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "export_format": export_format,
        "reflect_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "env_id": agent.env_id,
        "num_timesteps": int(agent.num_timesteps),
        "obs_dim": int(actor.in_features),
        "obs_dtype": obs_dtype,
        "action": action,
        "state_size": int(state_size),
        "state_dtype": "float32",
        "state_layout": layout,
        "batch_size": batch_size,
        "inputs": [
            {"name": "obs", "shape": [batch, int(actor.in_features)], "dtype": obs_dtype},
            {"name": "state", "shape": [batch, int(state_size)], "dtype": "float32"},
        ],
        "outputs": [
            {"name": "action", "shape": [batch, *action["shape"]], "dtype": action["dtype"]},
            {"name": "next_state", "shape": [batch, int(state_size)], "dtype": "float32"},
        ],
        "network": {
            "hidden": list(net.hidden), "neuron": net.neuron, "recurrent": net.recurrent,
            "encoder": net.encoder, "readout_decay": net.readout_decay,
        },
        "observation_normalization": None if agent.obs_normalizer is None else {
            "clip": agent.obs_normalizer.clip, "epsilon": agent.obs_normalizer.epsilon,
        },
        "usage": "action, next_state = policy(obs, state); start every episode from a zero state "
                 "[batch, state_size] (zero the rows of streams whose episode begins)",
    }
