"""Neuron step functions against hand-computed golden trajectories, and reset-gradient semantics."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from reflect.spiking.neurons import (
    ALIFParameters,
    ALIFState,
    LIFParameters,
    LIFState,
    alif_step,
    leaky_integrator_step,
    lif_step,
)
from reflect.spiking.surrogate import Surrogate, spike, surrogate_derivative

F64 = torch.float64
SURROGATE = Surrogate("fast_sigmoid", 5.0)

# Inputs y_t for 2 neurons over 4 steps (rows are steps).
LIF_Y = [[1.5, 0.4], [1.5, 0.4], [0.0, 3.0], [0.0, 0.0]]

# LIF, beta = 0.5, theta = 1.0, from v_0 = s_0 = 0:
#   v_t = 0.5 * (v_{t-1} - 1.0 * s_{t-1}) + 0.5 * y_t,   s_t = [v_t > 1]
# neuron 0:
#   t1: 0.5*(0     - 0) + 0.5*1.5 = 0.75      -> s = 0
#   t2: 0.5*(0.75  - 0) + 0.5*1.5 = 1.125     -> s = 1
#   t3: 0.5*(1.125 - 1) + 0.5*0.0 = 0.0625    -> s = 0
#   t4: 0.5*(0.0625- 0) + 0.5*0.0 = 0.03125   -> s = 0
# neuron 1:
#   t1: 0.5*(0     - 0) + 0.5*0.4 = 0.2       -> s = 0
#   t2: 0.5*(0.2   - 0) + 0.5*0.4 = 0.3       -> s = 0
#   t3: 0.5*(0.3   - 0) + 0.5*3.0 = 1.65      -> s = 1
#   t4: 0.5*(1.65  - 1) + 0.5*0.0 = 0.325     -> s = 0
LIF_V = [[0.75, 0.2], [1.125, 0.3], [0.0625, 1.65], [0.03125, 0.325]]
LIF_S = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]

# Inputs for the ALIF check: 2 neurons over 5 steps.
ALIF_Y = [[3.0, 0.4], [3.0, 0.4], [3.0, 3.0], [3.0, 0.0], [0.0, 0.0]]

# ALIF, beta = 0.5, theta = 1.0, rho = 0.9, beta_a = 0.5, from v_0 = a_0 = s_0 = 0:
#   thr_{t-1} = 1 + 0.5 * a_{t-1}
#   v_t   = 0.5 * (v_{t-1} - thr_{t-1} * s_{t-1}) + 0.5 * y_t
#   a_t   = 0.9 * a_{t-1} + s_{t-1}
#   thr_t = 1 + 0.5 * a_t,   s_t = [v_t > thr_t]
# neuron 0 (y = 3, 3, 3, 3, 0):
#   t1: v = 0.5*(0      - 0    ) + 1.5 = 1.5      a = 0.9*0   + 0 = 0      thr = 1.0    s = 1
#   t2: v = 0.5*(1.5    - 1.0*1) + 1.5 = 1.75     a = 0.9*0   + 1 = 1      thr = 1.5    s = 1
#   t3: v = 0.5*(1.75   - 1.5*1) + 1.5 = 1.625    a = 0.9*1   + 1 = 1.9    thr = 1.95   s = 0
#       (a LIF neuron would spike here: 1.625 > 1; the raised threshold stops it)
#   t4: v = 0.5*(1.625  - 0    ) + 1.5 = 2.3125   a = 0.9*1.9 + 0 = 1.71   thr = 1.855  s = 1
#   t5: v = 0.5*(2.3125 - 1.855) + 0.0 = 0.22875  a = 0.9*1.71+ 1 = 2.539  thr = 2.2695 s = 0
# neuron 1 (y = 0.4, 0.4, 3, 0, 0):
#   t1: v = 0.5*(0    - 0  ) + 0.2 = 0.2     a = 0              thr = 1.0   s = 0
#   t2: v = 0.5*(0.2  - 0  ) + 0.2 = 0.3     a = 0              thr = 1.0   s = 0
#   t3: v = 0.5*(0.3  - 0  ) + 1.5 = 1.65    a = 0              thr = 1.0   s = 1
#   t4: v = 0.5*(1.65 - 1.0) + 0.0 = 0.325   a = 0.9*0 + 1 = 1  thr = 1.5   s = 0
#   t5: v = 0.5*(0.325- 0  ) + 0.0 = 0.1625  a = 0.9*1 + 0 = 0.9 thr = 1.45 s = 0
ALIF_V = [[1.5, 0.2], [1.75, 0.3], [1.625, 1.65], [2.3125, 0.325], [0.22875, 0.1625]]
ALIF_A = [[0.0, 0.0], [1.0, 0.0], [1.9, 0.0], [1.71, 1.0], [2.539, 0.9]]
ALIF_THR = [[1.0, 1.0], [1.5, 1.0], [1.95, 1.0], [1.855, 1.5], [2.2695, 1.45]]
ALIF_S = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]


def t64(values: list[float] | list[list[float]]) -> Tensor:
    return torch.tensor(values, dtype=F64)


def run_lif(ys: Tensor, params: LIFParameters) -> tuple[Tensor, Tensor]:
    """Run ``lif_step`` over ``ys`` ``[T, neurons]`` (batch of 1); return ``v`` and ``s`` ``[T, neurons]``."""
    zeros = ys.new_zeros(1, ys.shape[1])
    state = LIFState(zeros, zeros.clone())
    vs, ss = [], []
    for y in ys:
        s, state = lif_step(y.unsqueeze(0), state, params, SURROGATE)
        assert torch.equal(s, state.s)
        vs.append(state.v[0])
        ss.append(s[0])
    return torch.stack(vs), torch.stack(ss)


@pytest.mark.parametrize("as_tensors", [False, True], ids=["floats", "per-neuron-tensors"])
def test_lif_golden_trajectory(as_tensors: bool) -> None:
    """``lif_step`` reproduces the hand-computed 4-step trajectory exactly (Python or tensor params)."""
    if as_tensors:
        params = LIFParameters(beta=t64([0.5, 0.5]), theta=t64([1.0, 1.0]))
    else:
        params = LIFParameters(beta=0.5, theta=1.0)
    v, s = run_lif(t64(LIF_Y), params)
    torch.testing.assert_close(v, t64(LIF_V), rtol=0.0, atol=1e-12)
    assert torch.equal(s, t64(LIF_S))


def test_lif_per_neuron_parameters_act_per_neuron() -> None:
    """Per-neuron ``beta`` / ``theta`` apply column-wise: neuron 1 with theta = 2 never spikes here."""
    params = LIFParameters(beta=t64([0.5, 0.25]), theta=t64([1.0, 2.0]))
    v, s = run_lif(t64(LIF_Y), params)
    # neuron 1: v_t = 0.25 * v_{t-1} + 0.75 * y_t (threshold 2, no spike until t3):
    #   t1: 0.75*0.4 = 0.3;  t2: 0.25*0.3 + 0.3 = 0.375;  t3: 0.25*0.375 + 2.25 = 2.34375 -> s = 1
    #   t4: 0.25*(2.34375 - 2*1) + 0 = 0.0859375
    torch.testing.assert_close(v[:, 1], t64([0.3, 0.375, 2.34375, 0.0859375]), rtol=0.0, atol=1e-12)
    assert s[:, 1].tolist() == [0.0, 0.0, 1.0, 0.0]
    torch.testing.assert_close(v[:, 0], t64(LIF_V)[:, 0], rtol=0.0, atol=1e-12)  # neuron 0 unchanged


def test_alif_golden_trajectory_and_rising_threshold() -> None:
    """``alif_step`` reproduces the hand-computed 5-step trajectory; the threshold rises after spikes."""
    ys = t64(ALIF_Y)
    params = ALIFParameters(beta=0.5, theta=1.0, rho=0.9, beta_a=0.5)
    zeros = ys.new_zeros(1, 2)
    state = ALIFState(zeros, zeros.clone(), zeros.clone())
    vs, as_, ss, thrs = [], [], [], []
    for y in ys:
        s, state = alif_step(y.unsqueeze(0), state, params, SURROGATE)
        assert torch.equal(s, state.s)
        vs.append(state.v[0])
        as_.append(state.a[0])
        ss.append(s[0])
        thrs.append(params.theta + params.beta_a * state.a[0])
    v, a, s, thr = (torch.stack(x) for x in (vs, as_, ss, thrs))
    torch.testing.assert_close(v, t64(ALIF_V), rtol=0.0, atol=1e-12)
    torch.testing.assert_close(a, t64(ALIF_A), rtol=0.0, atol=1e-12)
    torch.testing.assert_close(thr, t64(ALIF_THR), rtol=0.0, atol=1e-12)
    assert torch.equal(s, t64(ALIF_S))
    assert s.sum() >= 1
    # Threshold of neuron 0 rises with each of its first two spikes: 1.0 < 1.5 < 1.95.
    assert thr[0, 0] < thr[1, 0] < thr[2, 0]
    # At t3 neuron 0 is above the base threshold but below its adapted one: no spike.
    assert 1.0 < v[2, 0].item() < thr[2, 0].item() and s[2, 0] == 0.0


def test_alif_without_adaptation_is_lif() -> None:
    """With ``beta_a = 0`` ALIF's membrane and spikes equal LIF's on the same input (a consistency check)."""
    ys = t64(LIF_Y)
    v_lif, s_lif = run_lif(ys, LIFParameters(0.5, 1.0))
    zeros = ys.new_zeros(1, 2)
    state = ALIFState(zeros, zeros.clone(), zeros.clone())
    params = ALIFParameters(beta=0.5, theta=1.0, rho=0.9, beta_a=0.0)
    for t, y in enumerate(ys):
        s, state = alif_step(y.unsqueeze(0), state, params, SURROGATE)
        assert torch.equal(state.v[0], v_lif[t])
        assert torch.equal(s[0], s_lif[t])
    assert state.a.sum() > 0  # adaptation still integrates spikes; it just has no effect


def test_leaky_integrator_literal() -> None:
    """``o_t = decay * o_{t-1} + (1 - decay) * y_t`` on a literal, with a float and a per-output decay."""
    o_prev = t64([[2.0, -4.0]])
    y = t64([[1.0, 8.0]])
    # 0.75*2 + 0.25*1 = 1.75;  0.75*(-4) + 0.25*8 = -1.0
    torch.testing.assert_close(leaky_integrator_step(y, o_prev, 0.75), t64([[1.75, -1.0]]),
                               rtol=0.0, atol=1e-12)
    # per output: decay (0.5, 0.0): 0.5*2 + 0.5*1 = 1.5;  0*(-4) + 1*8 = 8.0
    torch.testing.assert_close(leaky_integrator_step(y, o_prev, t64([0.5, 0.0])), t64([[1.5, 8.0]]),
                               rtol=0.0, atol=1e-12)


BETA, THETA = 0.5, 1.0
V_PREV = 1.3  # above threshold: s_{t-1} = 1, and u = v - theta = 0.3


def _grad_v_wrt_v_prev(step: str, detach_reset: bool) -> tuple[float, float]:
    """``d v_t / d v_{t-1}`` where ``s_{t-1} = spike(v_{t-1} - theta)`` = 1; also returns ``s_{t-1}``."""
    v_prev = torch.tensor([[V_PREV]], dtype=F64, requires_grad=True)
    s_prev = spike(v_prev - THETA, SURROGATE)
    y = torch.tensor([[0.7]], dtype=F64)
    if step == "lif":
        lif_params = LIFParameters(BETA, THETA, detach_reset)
        v = lif_step(y, LIFState(v_prev, s_prev), lif_params, SURROGATE)[1].v
    else:
        a_prev = torch.zeros(1, 1, dtype=F64)
        alif_params = ALIFParameters(BETA, THETA, 0.9, 0.5, detach_reset)
        v = alif_step(y, ALIFState(v_prev, a_prev, s_prev), alif_params, SURROGATE)[1].v
    (grad,) = torch.autograd.grad(v.sum(), v_prev)
    return grad.item(), s_prev.item()


@pytest.mark.parametrize("step", ["lif", "alif"])
def test_detach_reset_gradient_is_exactly_beta(step: str) -> None:
    """With ``detach_reset=True`` the reset is a constant: ``d v_t / d v_{t-1} = beta`` exactly."""
    grad, s_prev = _grad_v_wrt_v_prev(step, detach_reset=True)
    assert s_prev == 1.0  # the step goes through a reset
    assert grad == BETA


@pytest.mark.parametrize("step", ["lif", "alif"])
def test_attached_reset_gradient_uses_surrogate(step: str) -> None:
    """With ``detach_reset=False``: ``d v_t / d v_{t-1} = beta * (1 - theta * sigma'(v_{t-1} - theta))``.

    (For ALIF with ``a_{t-1} = 0`` the crossed threshold is ``theta``.)
    """
    grad, s_prev = _grad_v_wrt_v_prev(step, detach_reset=False)
    assert s_prev == 1.0
    sigma = surrogate_derivative(torch.tensor(V_PREV - THETA, dtype=F64), SURROGATE).item()
    # fast_sigmoid, k = 5, u = 0.3: sigma' = 1 / (1 + 1.5)^2 = 0.16;  0.5 * (1 - 0.16) = 0.42
    assert sigma == pytest.approx(0.16, rel=1e-12)
    assert grad == pytest.approx(BETA * (1.0 - THETA * sigma), rel=1e-12)
    assert grad == pytest.approx(0.42, rel=1e-12)
    assert grad != BETA


def test_default_parameters_detach_reset() -> None:
    """Both parameter tuples default to ``detach_reset=True`` (the e-prop convention)."""
    assert LIFParameters().detach_reset is True
    assert ALIFParameters().detach_reset is True
