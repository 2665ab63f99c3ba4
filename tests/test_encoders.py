"""Input encoders: shapes, values, reproducibility of the Poisson encoder, and argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from reflect.spiking.encoders import (
    ENCODERS,
    DirectEncoder,
    PoissonEncoder,
    PopulationEncoder,
    PosNegEncoder,
    make_encoder,
)


@pytest.mark.parametrize(
    ("name", "cls", "width"),
    [("direct", DirectEncoder, 3), ("poisson", PoissonEncoder, 3), ("posneg", PosNegEncoder, 6),
     ("population", PopulationEncoder, 24)],
)
def test_make_encoder_shapes(name: str, cls: type, width: int) -> None:
    """Every encoder maps ``[batch, 3]`` to ``[batch, out_features]`` with the documented width."""
    enc = make_encoder(name, 3)
    assert type(enc) is cls
    assert enc.in_features == 3
    assert enc.out_features == width
    obs = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    out = enc(obs)
    assert out.shape == (5, width)
    assert out.dtype == obs.dtype
    assert len(list(enc.parameters())) == 0  # no trainable parameters


def test_encoder_names() -> None:
    """The registry lists exactly the four encoders."""
    assert ENCODERS == ("direct", "poisson", "posneg", "population")


def test_direct_is_identity() -> None:
    """``direct`` returns the observation values unchanged."""
    obs = torch.tensor([[0.5, -1.25, 3.0]], dtype=torch.float64)
    out = DirectEncoder(3)(obs)
    assert torch.equal(out, torch.tensor([[0.5, -1.25, 3.0]], dtype=torch.float64))


def test_posneg_literal() -> None:
    """``posneg`` gives ``[relu(x), relu(-x)]``: positive parts first, then magnitudes of negatives."""
    obs = torch.tensor([[1.5, -2.0, 0.0], [-0.25, 0.75, -3.0]])
    out = PosNegEncoder(3)(obs)
    expected = torch.tensor([[1.5, 0.0, 0.0, 0.0, 2.0, 0.0], [0.0, 0.75, 0.0, 0.25, 0.0, 3.0]])
    assert torch.equal(out, expected)
    assert torch.all(out >= 0)


def test_population_peak_at_matching_centre() -> None:
    """The neuron whose centre equals the input has activation 1.0; the others are lower (Gaussian).

    n = 5 on [-2, 2] gives centres (-2, -1, 0, 1, 2) and width 1; output index = dim * n + k.
    """
    enc = PopulationEncoder(2, n=5, low=-2.0, high=2.0)
    assert enc.out_features == 10
    assert enc.width == 1.0
    assert enc.centers.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    out = enc(torch.tensor([[-1.0, 2.0]]))
    assert out.shape == (1, 10)
    dim0, dim1 = out[0, :5], out[0, 5:]
    assert dim0[1].item() == 1.0 and dim1[4].item() == 1.0
    assert torch.all(torch.cat([dim0[[0, 2, 3, 4]], dim1[:4]]) < 1.0)
    # Literal values: exp(-d^2 / 2) for distance d in widths.
    e = math.exp
    expected0 = [e(-0.5), 1.0, e(-0.5), e(-2.0), e(-4.5)]
    expected1 = [e(-8.0), e(-4.5), e(-2.0), e(-0.5), 1.0]
    torch.testing.assert_close(out[0], torch.tensor(expected0 + expected1), rtol=1e-6, atol=0.0)


def test_population_default_tiling() -> None:
    """Defaults: 8 centres evenly on [-3, 3] (width 6/7); an input between two centres peaks at both."""
    enc = make_encoder("population", 1)
    assert enc.out_features == 8
    torch.testing.assert_close(enc.centers, torch.linspace(-3.0, 3.0, 8))
    out = enc(torch.tensor([[0.0]]))[0]  # 0 is midway between centres 3 and 4
    assert out.argmax().item() in (3, 4)
    torch.testing.assert_close(out[3], out[4])
    torch.testing.assert_close(out[3], torch.tensor(math.exp(-0.5 * 0.5**2)))


@pytest.mark.parametrize(
    "kwargs", [{"n": 1}, {"n": 0}, {"low": 1.0, "high": 1.0}, {"low": 2.0, "high": -2.0}]
)
def test_population_bad_arguments_raise(kwargs: dict[str, float]) -> None:
    """Fewer than 2 neurons or an empty/reversed range raises ``ValueError`` explaining the rule."""
    with pytest.raises(ValueError, match=r"n >= 2 and high > low"):
        PopulationEncoder(2, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"n >= 2 and high > low"):
        make_encoder("population", 2, **kwargs)


def test_unknown_encoder_raises_listing_names() -> None:
    """``make_encoder('bogus', 3)`` raises ``ValueError`` naming it and listing all valid encoders."""
    with pytest.raises(ValueError, match=r"unknown encoder 'bogus'") as info:
        make_encoder("bogus", 3)
    for name in ENCODERS:
        assert name in str(info.value)


def test_poisson_values_are_binary() -> None:
    """Poisson output is 0/1 spikes of the observation's dtype and shape."""
    enc = PoissonEncoder(4, gain=2.0, seed=0)
    obs = torch.randn(50, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = enc(obs)
    assert out.shape == (50, 4) and out.dtype == torch.float64
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_poisson_same_seed_same_spikes() -> None:
    """Two encoders with the same seed, or one re-seeded, draw identical spikes."""
    obs = torch.zeros(200, 3)
    a, b = PoissonEncoder(3, seed=7), PoissonEncoder(3, seed=7)
    first = a(obs)
    assert torch.equal(first, b(obs))
    second = a(obs)
    assert not torch.equal(first, second)  # the stream advances between calls
    a.seed(7)
    assert torch.equal(a(obs), first)


def test_poisson_different_seed_different_spikes() -> None:
    """Different seeds give different spike trains (600 fair coins agreeing has probability 2^-600)."""
    obs = torch.zeros(200, 3)
    assert not torch.equal(PoissonEncoder(3, seed=1)(obs), PoissonEncoder(3, seed=2)(obs))


def test_poisson_does_not_touch_global_rng() -> None:
    """The encoder draws from its own generator, so the global torch RNG stream is unchanged."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    PoissonEncoder(3, seed=0)(torch.zeros(10, 3))
    assert torch.equal(torch.rand(3), expected)


def test_poisson_rate_matches_sigmoid() -> None:
    """The empirical firing rate over N samples is ``sigmoid(gain * x)`` within 5 standard errors.

    Each entry is a mean of N = 20000 Bernoulli(p) draws, standard error ``sqrt(p (1 - p) / N)``
    (at most 0.0035); 5 standard errors bounds a chance failure at about 6e-7 per entry. The seed is
    fixed, so the test is deterministic anyway.
    """
    n_samples = 20_000
    gain = 1.5
    x = torch.tensor([-2.0, -0.5, 0.0, 0.4, 2.0], dtype=torch.float64)
    enc = PoissonEncoder(5, gain=gain, seed=11)
    spikes = enc(x.expand(n_samples, 5))
    rate = spikes.mean(dim=0)
    p = torch.sigmoid(gain * x)
    stderr = torch.sqrt(p * (1 - p) / n_samples)
    assert torch.all((rate - p).abs() < 5 * stderr), (rate, p)
    # The rate is that of gain * x, not of x: sigmoid(-2) = 0.12 vs sigmoid(-3) = 0.047.
    assert abs(rate[0].item() - torch.sigmoid(x[0]).item()) > 10 * stderr[0].item()
