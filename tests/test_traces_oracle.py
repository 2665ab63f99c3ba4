"""Online eligibility-trace gradients against backprop through time (float64 autograd oracle)."""

from __future__ import annotations

import pytest
import torch
from oracle import make_problem

from reflect.traces.oracle import bptt_gradients, online_gradients, relative_error

NEURON_CASES = [
    pytest.param({}, id="lif"),
    pytest.param({"detach_reset": False}, id="lif-reset-in-gradient"),
    pytest.param({"neuron": "alif"}, id="alif"),
    pytest.param({"neuron": "alif", "detach_reset": False}, id="alif-reset-in-gradient"),
    pytest.param(
        {"neuron": "alif", "learn_beta": True, "learn_theta": True, "per_neuron": True,
         "detach_reset": False},
        id="alif-learnable-per-neuron",
    ),
    pytest.param({"learn_beta": True, "learn_theta": True}, id="lif-learnable-per-layer"),
    pytest.param({"surrogate": ("arctan", 2.0)}, id="lif-arctan"),
]


def _kwargs(case: dict) -> dict:
    from reflect.spiking import Surrogate

    kwargs = dict(case)
    if "surrogate" in kwargs:
        kwargs["surrogate"] = Surrogate(*kwargs["surrogate"])
    return kwargs


def _assert_matches(online: dict, bptt: dict) -> None:
    assert set(online) == set(bptt)
    for name in bptt:
        scale = float(bptt[name].abs().max())
        assert scale > 0.0, f"{name}: the oracle gradient is zero, the comparison would be vacuous"
        torch.testing.assert_close(online[name], bptt[name], rtol=1e-6, atol=1e-9 * scale, msg=name)


@pytest.mark.parametrize("T", [1, 4, 16])
@pytest.mark.parametrize("case", NEURON_CASES)
def test_drtrl_equals_bptt_for_one_layer(T: int, case: dict) -> None:
    """D-RTRL summed over T steps == BPTT for one non-recurrent layer, readout included."""
    net, xs, targets = make_problem(T, **_kwargs(case))
    _assert_matches(online_gradients(net, xs, targets, "d-rtrl"), bptt_gradients(net, xs, targets))


@pytest.mark.parametrize("case", NEURON_CASES)
def test_pprop_equals_bptt_at_one_step(case: dict) -> None:
    """pp-prop == BPTT at T = 1, for any trace decays."""
    net, xs, targets = make_problem(1, **_kwargs(case))
    online = online_gradients(net, xs, targets, "pp-prop", alpha_x=0.3, alpha_f=0.7)
    _assert_matches(online, bptt_gradients(net, xs, targets))


@pytest.mark.parametrize("T", [4, 16])
def test_pprop_default_is_exact_for_lif_with_detached_reset(T: int) -> None:
    """With one beta per layer, alpha_x = beta and alpha_f = 0, pp-prop equals BPTT at every T."""
    net, xs, targets = make_problem(T)
    _assert_matches(online_gradients(net, xs, targets, "pp-prop"), bptt_gradients(net, xs, targets))


def test_leaky_readout_weights_are_exact() -> None:
    """A leaky readout's own weights get the exact gradient; the hidden layer gets same-step credit."""
    net, xs, targets = make_problem(16, readout_decay=0.6)
    online, bptt = online_gradients(net, xs, targets, "d-rtrl"), bptt_gradients(net, xs, targets)
    assert relative_error(online, bptt, ["readout.weight", "readout.bias"]) < 1e-9
    assert relative_error(online, bptt, ["layers.0.weight"]) > 1e-3


def _deviation(T: int, algorithm: str, **kwargs: object) -> float:
    net, xs, targets = make_problem(T, **kwargs)  # type: ignore[arg-type]
    return relative_error(online_gradients(net, xs, targets, algorithm), bptt_gradients(net, xs, targets))


@pytest.mark.parametrize(
    ("label", "T", "algorithm", "kwargs"),
    [
        ("recurrent layer, d-rtrl", 16, "d-rtrl", {"recurrent": True}),
        ("stacked pair, d-rtrl", 16, "d-rtrl", {"hidden": (16, 16)}),
        ("alif, pp-prop", 16, "pp-prop", {"neuron": "alif"}),
        ("lif with reset in gradient, pp-prop", 16, "pp-prop", {"detach_reset": False}),
    ],
)
def test_negative_controls_differ_from_bptt(
    label: str, T: int, algorithm: str, kwargs: dict, record_property: pytest.RecordProperty
) -> None:
    """Cases where online credit is an approximation: the comparison must fail, so it can fail."""
    deviation = _deviation(T, algorithm, **kwargs)
    record_property(label, deviation)
    print(f"{label}: max relative deviation from BPTT = {deviation:.3g}")
    assert deviation > 1e-3


def test_negative_control_is_exact_at_one_step() -> None:
    """The same recurrent layer is exact at T = 1, so the deviation above comes from time."""
    assert _deviation(1, "d-rtrl", recurrent=True) < 1e-9
