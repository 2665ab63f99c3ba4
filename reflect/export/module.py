"""A pure-torch, inference-only copy of an agent's policy: ``(obs, state) -> (action, next_state)``.

:func:`build_policy_module` bakes everything the policy needs into one ``nn.Module``
(:class:`PolicyModule`): the observation statistics, the actor's weights and neuron constants, and the
action head's constants, all as buffers. The module is scriptable (TorchScript) and exportable (ONNX):
plain tensors in and out, no Python state::

    action, next_state = module(obs, state)       # obs [B, obs_dim], state [B, state_size]

* ``obs``: raw observations (float32, or float64 when the environment's observations are float64);
  the module normalises them with the agent's frozen statistics.
* ``state``: float32 ``[B, state_size]``, the network state of each stream, laid out as
  :func:`state_layout` says (per hidden layer ``v`` (membrane), ``a`` (ALIF adaptation), ``s`` (last
  spikes), then the readout ``o`` when the readout leaks). A new episode starts from zeros: pass
  ``initial_state(B)`` (or zero the rows of the streams whose episode begins).
* ``action``: the deterministic action - ``Discrete``: int64 ``[B]`` (argmax of the logits); ``Box``:
  float32 ``[B, A]`` in the bounds (the Gaussian mean, squashed and scaled like the agent's head).

Every operation reproduces the float32 arithmetic of the agent's own inference path
(:class:`~reflect.traces.engine.TraceEngine` under :meth:`Reflect.policy`): the same packed matrix
products ``[x, s_prev, 1] @ packed``, and per layer the same element-wise formulas in the same order,
because a spike is a threshold and one rounding difference can flip it. The engine runs numpy
kernels for LIF layers with fixed constants (``v <- beta (v - theta s) + (1 - beta) y``, unfused) and
torch's ``lerp`` for the others (ALIF, learnable ``beta``/``theta``: ``v <- lerp(v - theta s, y, 1 - beta)``,
a fused multiply-add on CPUs with FMA), and likewise for a leaky readout (numpy when the whole network
takes the numpy path). ``fma="native"`` calls ``torch.lerp`` (bit-exact in TorchScript); ``fma="float64"``
computes the fused ``a * b + c`` in float64 (the product of two float32 numbers is exact there) and
rounds to float32, for runtimes without a fused multiply-add operator (ONNX); that equals the fused
result unless the float64 sum itself had to round onto a float32 midpoint (double rounding, about one
operation in 10^9).

What cannot be reproduced bit for bit is the summation order inside the matrix products: numpy's BLAS,
torch's and onnxruntime's accumulate in different orders, so currents may differ in the last bit. A spike
flips only if a membrane lands within that last bit of its threshold (none did in 40 runs of 1,000 steps
of CartPole-v1 and Pendulum-v1 policies, 4.5 million spike comparisons over both formats); the parity
tests check actions and states over whole episodes.
"""

# No ``from __future__ import annotations`` here: TorchScript reads the annotations at run time.
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reflect import __version__

EXPORT_FORMAT = "reflect-exported-policy"
EXPORT_FORMAT_VERSION = 1
FMA_MODES = ("native", "float64")


class ExportError(ValueError):
    """The policy cannot be exported; the message names the option and what to do instead."""


class _Lerp(nn.Module):
    """``lerp(start, end, weight)`` as torch's CPU kernel computes it, in either FMA mode."""

    fma: torch.jit.Final[str]
    use_scalar: torch.jit.Final[bool]
    scalar_weight: torch.jit.Final[float]
    weight: Tensor
    coeff: Tensor
    small: Tensor

    def __init__(self, weight: Tensor | float, fma: str) -> None:
        super().__init__()
        self.fma = fma
        self.use_scalar = not isinstance(weight, Tensor)
        self.scalar_weight = float(weight) if self.use_scalar else 0.0
        w = torch.tensor(float(weight), dtype=torch.float32) if self.use_scalar else weight
        assert isinstance(w, Tensor)
        w = w.detach().to(torch.float32).clone()
        self.register_buffer("weight", w)
        small = w.abs() < 0.5
        self.register_buffer("coeff", torch.where(small, w, w - 1.0))
        self.register_buffer("small", small)

    def forward(self, start: Tensor, end: Tensor) -> Tensor:
        if self.fma == "native":
            if self.use_scalar:
                return torch.lerp(start, end, self.scalar_weight)
            return torch.lerp(start, end, self.weight)
        diff = end - start
        base = torch.where(self.small, start, end)
        return (self.coeff.double() * diff.double() + base.double()).float()


class _Normalize(nn.Module):
    """The agent's observation normalisation, in float64 as the agent computes it, then float32."""

    enabled: torch.jit.Final[bool]
    clip: torch.jit.Final[float]
    mean: Tensor
    scale: Tensor

    def __init__(self, mean: np.ndarray | None, scale: np.ndarray | None, clip: float, obs_dim: int) -> None:
        super().__init__()
        self.enabled = mean is not None
        self.register_buffer("mean", torch.as_tensor(
            np.zeros(obs_dim) if mean is None else mean, dtype=torch.float64).clone())
        self.register_buffer("scale", torch.as_tensor(
            np.ones(obs_dim) if scale is None else scale, dtype=torch.float64).clone())
        self.clip = float(clip)

    def forward(self, obs: Tensor) -> Tensor:
        if not self.enabled:
            return obs.to(torch.float32)
        x = (obs.to(torch.float64) - self.mean) * self.scale
        return x.clamp(-self.clip, self.clip).to(torch.float32)  # = the agent's minimum, then maximum


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
    """One spiking layer; reads its slice ``[start, start + states * H)`` of the flat state."""

    hidden: torch.jit.Final[int]
    start: torch.jit.Final[int]
    recurrent: torch.jit.Final[bool]
    adaptive: torch.jit.Final[bool]
    numpy_formula: torch.jit.Final[bool]
    memoryless: torch.jit.Final[bool]
    packed: Tensor
    beta: Tensor
    theta: Tensor
    one_minus_beta: Tensor
    rho: Tensor
    beta_a: Tensor

    def __init__(self, packed: Tensor, beta: Tensor, theta: Tensor, rho: Tensor, beta_a: Tensor, *,
                 start: int, recurrent: bool, adaptive: bool, numpy_formula: bool, memoryless: bool,
                 fma: str) -> None:
        super().__init__()
        self.hidden = int(packed.shape[1])
        self.start = start
        self.recurrent, self.adaptive = recurrent, adaptive
        self.numpy_formula, self.memoryless = numpy_formula, memoryless
        f32 = torch.float32
        self.register_buffer("packed", packed.detach().to(f32).clone())
        self.register_buffer("beta", beta.detach().to(f32).clone())
        self.register_buffer("theta", theta.detach().to(f32).clone())
        self.register_buffer("one_minus_beta", torch.rsub(self.beta, 1.0))
        self.register_buffer("rho", rho.detach().to(f32).clone())
        self.register_buffer("beta_a", beta_a.detach().to(f32).clone())
        self.lerp = _Lerp(self.one_minus_beta, fma)

    @property
    def states(self) -> int:
        return 3 if self.adaptive else 2

    def forward(self, x: Tensor, state: Tensor, ones: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Spikes ``[B, H]`` and the layer's new state tensors (``v, s`` or ``v, a, s``)."""
        h, i = self.hidden, self.start
        if self.numpy_formula and self.memoryless and not self.recurrent:  # the defaults: v_t = y_t
            y = torch.mm(torch.cat([x, ones], dim=1), self.packed)
            s = (y > self.theta).to(torch.float32)
            return s, [y, s]
        s_at = i + (2 if self.adaptive else 1) * h
        s_prev = state[:, s_at:s_at + h]
        z = torch.cat([x, s_prev, ones], dim=1) if self.recurrent else torch.cat([x, ones], dim=1)
        y = torch.mm(z, self.packed)
        if self.numpy_formula and self.memoryless:
            s = (y > self.theta).to(torch.float32)
            return s, [y, s]
        v_prev = state[:, i:i + h]
        if self.adaptive:  # the engine's torch kernels (ALIF never takes the numpy path)
            a_prev = state[:, i + h:i + 2 * h]
            threshold_prev = a_prev * self.beta_a + self.theta
            v = self.lerp(v_prev - s_prev * threshold_prev, y)
            a = a_prev * self.rho + s_prev
            threshold = a * self.beta_a + self.theta
            s = (v > threshold).to(torch.float32)
            return s, [v, a, s]
        if self.numpy_formula:
            v = (v_prev - s_prev * self.theta) * self.beta + y * self.one_minus_beta
        else:
            v = self.lerp(v_prev - s_prev * self.theta, y)
        s = (v > self.theta).to(torch.float32)
        return s, [v, s]


class _Readout(nn.Module):
    """The leaky-integrator readout ``o <- o + (1 - d) (y - o)`` (numpy path) or ``lerp`` (torch path)."""

    outputs: torch.jit.Final[int]
    start: torch.jit.Final[int]
    leaky: torch.jit.Final[bool]
    numpy_formula: torch.jit.Final[bool]
    packed: Tensor
    weight: Tensor

    def __init__(self, packed: Tensor, decay: float, *, start: int, numpy_formula: bool, fma: str) -> None:
        super().__init__()
        self.outputs = int(packed.shape[1])
        self.start = start
        self.leaky = decay > 0.0
        self.numpy_formula = numpy_formula
        self.register_buffer("packed", packed.detach().to(torch.float32).clone())
        self.register_buffer("weight", torch.tensor(1.0 - decay, dtype=torch.float32))
        self.lerp = _Lerp(1.0 - decay, fma)

    def forward(self, s: Tensor, state: Tensor, ones: Tensor) -> Tensor:
        y = torch.mm(torch.cat([s, ones], dim=1), self.packed)
        if not self.leaky:
            return y
        o_prev = state[:, self.start:self.start + self.outputs]
        if self.numpy_formula:
            return o_prev + (y - o_prev) * self.weight
        return self.lerp(o_prev, y)


class _Head(nn.Module):
    """Deterministic action of the agent's head: argmax (Discrete) or the squashed, scaled mean (Box)."""

    discrete: torch.jit.Final[bool]
    squash: torch.jit.Final[str]
    all_bounded: torch.jit.Final[bool]
    center: Tensor
    scale: Tensor
    bounded: Tensor

    def __init__(self, discrete: bool, center: np.ndarray | None = None, scale: np.ndarray | None = None,
                 bounded: np.ndarray | None = None, squash: str = "tanh") -> None:
        super().__init__()
        self.discrete, self.squash = discrete, squash
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
        squashed = torch.tanh(u) if self.squash == "tanh" else torch.clamp(u, -1.0, 1.0)
        action = squashed * self.scale + self.center
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
        self.register_buffer("one", torch.ones(1, 1, dtype=torch.float32))

    def forward(self, obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        x = self.encoder(self.normalize(obs))
        ones = self.one.expand(x.shape[0], 1)
        parts: list[Tensor] = []
        for layer in self.layers:
            x, layer_state = layer(x, state, ones)
            parts.extend(layer_state)
        out = self.readout(x, state, ones)
        if self.readout.leaky:
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
    if actor.readout.packed.device.type != "cpu":
        raise ExportError("export a policy whose weights are on the CPU (move the agent with .cpu())")


def state_layout(actor: Any) -> list[dict[str, Any]]:
    """The flat state's entries in order: ``{"name", "start", "stop"}`` column ranges of ``state``."""
    layout: list[dict[str, Any]] = []
    start = 0
    for i, layer in enumerate(actor.spiking_layers):
        names = ("v", "a", "s") if layer.adaptive else ("v", "s")
        for name in names:
            layout.append({"name": f"layers.{i}.{name}", "start": start, "stop": start + layer.out_features})
            start += layer.out_features
    if actor.readout.decay > 0.0:
        size = actor.readout.out_features
        layout.append({"name": "readout.o", "start": start, "stop": start + size})
    return layout


def build_policy_module(agent: Any, *, fma: str = "native") -> PolicyModule:
    """The deterministic policy of a :class:`~reflect.agents.Reflect` agent as a :class:`PolicyModule`.

    ``fma``: ``"native"`` (``torch.lerp``: for TorchScript) or ``"float64"`` (for ONNX); see the module
    docstring. Raises :class:`ExportError` for what cannot be exported (the Poisson encoder).
    """
    from reflect.learning.heads import CategoricalHead, GaussianHead
    from reflect.spiking.encoders import PopulationEncoder, PosNegEncoder

    if fma not in FMA_MODES:
        raise ValueError(f"unknown fma mode {fma!r}: choose one of {', '.join(FMA_MODES)}")
    actor = agent.actor
    _check_exportable(actor)
    engine = agent.policy().engine  # the inference path whose arithmetic the module reproduces
    normalizer = agent.obs_normalizer
    obs_dim = int(actor.in_features)
    if normalizer is None:
        normalize = _Normalize(None, None, 0.0, obs_dim)
    else:
        mean = np.asarray(normalizer.rms.mean, dtype=np.float64)
        normalize = _Normalize(mean, normalizer.scale(), normalizer.clip, obs_dim)
    if isinstance(actor.encoder, PosNegEncoder):
        encoder = _Encoder("posneg")
    elif isinstance(actor.encoder, PopulationEncoder):
        encoder = _Encoder("population", actor.encoder.centers, actor.encoder.width)
    else:
        encoder = _Encoder("direct")
    layers: list[_Layer] = []
    start = 0
    for layer, traces in zip(actor.spiking_layers, engine.layers, strict=True):
        kernels = traces.numpy_kernels
        layers.append(_Layer(
            layer.packed, layer.beta, layer.theta, layer.rho, layer.beta_a, start=start,
            recurrent=layer.recurrent, adaptive=layer.adaptive, numpy_formula=kernels is not None,
            memoryless=kernels is not None and bool(kernels.memoryless), fma=fma,
        ))
        start += layers[-1].states * layer.out_features
    readout = _Readout(actor.readout.packed, actor.readout.decay, start=start,
                       numpy_formula=bool(engine.numpy_path), fma=fma)
    if actor.readout.decay > 0.0:
        start += actor.readout.out_features
    head_source = agent.head
    if isinstance(head_source, CategoricalHead):
        head = _Head(True)
    elif isinstance(head_source, GaussianHead):
        head = _Head(False, head_source.center, head_source.scale, head_source.bounded, head_source.squash)
    else:
        raise ExportError(f"action head {type(head_source).__name__} cannot be exported")
    module = PolicyModule(normalize, encoder, layers, readout, head, obs_dim, start)
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
