"""The Gaussian policy head: log-prob with squashing, score gradients, bounds, and learning with it."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from tasks import ContinuousCueEnv
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

from reflect.agents import Reflect
from reflect.learning.heads import GaussianHead

LOW = np.array([-2.0, 0.0, -1.0])
HIGH = np.array([4.0, 1.0, 1.0])
CUE = {"network": {"hidden": [32]}, "normalize": {"observations": False, "rewards": False},
       "learner": {"entropy_coef": 0.0}, "action": {"log_std_lr_scale": 1.0}}


def _head(squash: str = "tanh", **kwargs: object) -> GaussianHead:
    return GaussianHead(3, LOW, HIGH, squash=squash, init_log_std=-0.3, seed=0, **kwargs)  # type: ignore[arg-type]


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(size=(4, 3)), rng.normal(scale=1.5, size=(4, 3))  # means, pre-squash actions


def test_tanh_log_prob_matches_torch_transformed_distribution() -> None:
    head = _head("tanh")
    head.log_std_np[:] = [-0.3, 0.2, -1.0]
    mu, u = _batch()
    log_std = torch.tensor(head.log_std_np)
    center, scale = torch.tensor((HIGH + LOW) / 2), torch.tensor((HIGH - LOW) / 2)
    dist = TransformedDistribution(
        Normal(torch.tensor(mu), log_std.exp()), [TanhTransform(), AffineTransform(center, scale)]
    )
    env_action = torch.tensor(head.to_env(u), dtype=torch.float64)
    expected = dist.log_prob(center + scale * torch.tanh(torch.tensor(u))).sum(dim=1).numpy()
    np.testing.assert_allclose(head.log_prob(mu, u), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(env_action.numpy(), (center + scale * torch.tanh(torch.tensor(u))).numpy(),
                               rtol=1e-6)
    # negative control: leaving out the squash Jacobian is detected
    plain = Normal(torch.tensor(mu), log_std.exp()).log_prob(torch.tensor(u)).sum(dim=1).numpy()
    assert np.abs(plain - expected).max() > 1e-2


def test_tanh_log_prob_is_finite_for_saturated_actions() -> None:
    head = _head("tanh")
    mu = np.zeros((1, 3))
    u = np.array([[30.0, -30.0, 0.0]])
    assert np.isfinite(head.log_prob(mu, u)).all()


def test_clip_log_prob_is_the_gaussian_density_of_the_draw() -> None:
    head = _head("clip")
    mu, u = _batch()
    std = float(np.exp(-0.3))
    expected = (Normal(torch.tensor(mu), std).log_prob(torch.tensor(u)).sum(dim=1)
                - torch.log(torch.tensor((HIGH - LOW) / 2)).sum()).numpy()
    np.testing.assert_allclose(head.log_prob(mu, u), expected, rtol=1e-10)
    env = head.to_env(u)
    np.testing.assert_allclose(env, (HIGH + LOW) / 2 + (HIGH - LOW) / 2 * np.clip(u, -1, 1), rtol=1e-6)


@pytest.mark.parametrize("weight", [0.0, 0.05, -0.05])
def test_score_and_log_std_gradient_match_autograd(weight: float) -> None:
    head = _head("tanh")
    head.log_std_np[:] = [-0.3, 0.2, -1.0]
    mu, u = _batch()
    signal = np.zeros((4, 3))
    head.score(mu, u, np.full(4, weight), signal)
    mu_t = torch.tensor(mu, requires_grad=True)
    log_std_t = torch.tensor(head.log_std_np, requires_grad=True)
    dist = Normal(mu_t, log_std_t.exp())
    per_stream = dist.log_prob(torch.tensor(u)).sum(dim=1) + weight * dist.entropy().sum(dim=1)
    grads = [torch.autograd.grad(per_stream[b], [mu_t, log_std_t], retain_graph=True) for b in range(4)]
    expected_mu = np.stack([g[0][b].numpy() for b, g in enumerate(grads)])
    expected_log_std = np.stack([g[1].numpy() for g in grads])
    np.testing.assert_allclose(signal, expected_mu, rtol=1e-10, atol=1e-12)
    assert head.extra_grad is not None
    np.testing.assert_allclose(head.extra_grad, expected_log_std, rtol=1e-10, atol=1e-12)
    # negative control: the entropy term is really in there
    if weight:
        no_entropy = np.stack([torch.autograd.grad(dist.log_prob(torch.tensor(u))[b].sum(), log_std_t,
                                                   retain_graph=True)[0].numpy() for b in range(4)])
        assert np.abs(no_entropy - expected_log_std).max() > 1e-3


def test_entropy_is_the_pre_squash_gaussian_entropy() -> None:
    head = _head()
    std = torch.full((3,), -0.3, dtype=torch.float64).exp()
    expected = Normal(torch.zeros(3, dtype=torch.float64), std).entropy().sum().item()
    np.testing.assert_allclose(head.entropy(np.zeros((2, 3))), [expected, expected], rtol=1e-12)


def test_samples_have_the_head_mean_and_spread_and_actions_stay_in_bounds() -> None:
    head = _head()
    mu = np.tile([[0.5, -1.0, 3.0]], (20_000, 1))
    u = head.sample(mu, deterministic=False).copy()
    np.testing.assert_allclose(u.mean(axis=0), mu[0], atol=0.02)
    np.testing.assert_allclose(u.std(axis=0), np.exp(-0.3), rtol=0.02)
    env = head.to_env(u)
    assert env.dtype == np.float32 and (env >= LOW).all() and (env <= HIGH).all()
    deterministic = head.to_env(head.sample(mu[:1], deterministic=True))
    np.testing.assert_allclose(deterministic[0], (HIGH + LOW) / 2 + (HIGH - LOW) / 2 * np.tanh(mu[0]),
                               rtol=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_correlated_noise_stays_standard_normal_with_correlation_beta_per_step(beta: float) -> None:
    """eps_t = beta eps_{t-1} + sqrt(1 - beta^2) xi_t: N(0, 1) at every step, corr(eps_t, eps_{t+k}) =
    beta^k (beta 0, white noise, is the negative control)."""
    head = _head(noise_correlation=beta)
    mu = np.zeros((20_000, 3))
    draws = np.stack([head.sample(mu, deterministic=False).copy() / np.exp(-0.3) for _ in range(6)])
    np.testing.assert_allclose(draws.std(axis=(1, 2)), 1.0, rtol=0.02)  # the first draw and every later one
    for lag in (1, 5):
        corr = np.mean(draws[lag:] * draws[:-lag]) / np.mean(draws**2)
        assert corr == pytest.approx(beta**lag, abs=0.01)
    head.sample(mu, deterministic=True)  # a deterministic step draws nothing, carries the noise on
    assert head.carried_noise().shape == ((20_000, 3) if beta else (20_000, 0))
    head.restart_noise()
    restarted = head.sample(mu, deterministic=False).copy() / np.exp(-0.3)
    assert abs(np.mean(restarted * draws[-1])) < 0.01  # a restart draws white noise, unrelated to the last


def _lag_one_correlation(head: GaussianHead, steps: int = 6) -> float:
    mu = np.zeros((20_000, 3))
    draws = np.stack([head.sample(mu, deterministic=False).copy() for _ in range(steps)])
    return float(np.mean(draws[1:] * draws[:-1]) / np.mean(draws**2))


@pytest.mark.parametrize(("target", "td_average", "expected"),
                         [(0.2, 0.4, 0.9), (0.2, 0.1, 0.45), (0.2, 0.0, 0.0), (0.0, 0.0, 0.9)])
def test_calm_target_shrinks_the_correlation_with_the_learners_errors(target: float, td_average: float,
                                                                      expected: float) -> None:
    """beta_t = beta * min(1, ebar / T): correlated while the errors are at T or above, white as they
    vanish; T = 0 (the negative control) keeps beta whatever the errors."""
    head = _head(noise_correlation=0.9, noise_calm_target=target)
    head.prepare(20_000)
    head.draw(False, td_average)  # as the learner draws: sets the correlation (the first draw is white)
    assert head.correlation == pytest.approx(expected, abs=1e-5)
    # sample() draws as a frozen policy does (no error average): the last correlation carries on
    assert _lag_one_correlation(head) == pytest.approx(expected, abs=0.01)


def test_the_learner_starts_its_error_average_at_the_noise_calm_target() -> None:
    config = {"network": {"hidden": [16]}, "action": {"noise_correlation": 0.9, "noise_calm_target": 0.3}}
    agent = Reflect(ContinuousCueEnv(), config, seed=0)
    assert agent.learner.td_average[0] == 0.3  # correlated from the start (calm_target 0 would give 0)
    agent.learn(200)
    agent.learner.td_average[0] = 0.06
    env = ContinuousCueEnv()
    obs, _ = env.reset(seed=0)
    agent.learner.act(obs[None])
    assert agent.head.correlation == pytest.approx(0.9 * 0.06 / 0.3)


def test_the_logs_show_the_spread_and_the_current_noise_correlation(tmp_path: object) -> None:
    from stable_baselines3.common.logger import configure

    config = {"network": {"hidden": [16]}, "action": {"noise_correlation": 0.9, "noise_calm_target": 2.0}}
    agent = Reflect(ContinuousCueEnv(), config, seed=0)
    agent.set_logger(configure(str(tmp_path), ["csv"]))
    agent.learn(400, log_interval=200)
    rows = (tmp_path / "progress.csv").read_text().splitlines()  # type: ignore[operator]
    header, last = rows[0].split(","), dict(zip(rows[0].split(","), rows[-1].split(","), strict=True))
    assert {"train/std", "train/noise_correlation", "train/td_error"} <= set(header)
    assert float(last["train/std"]) == pytest.approx(float(np.exp(agent.head.log_std_np).mean()), rel=1e-6)
    logged = float(last["train/noise_correlation"])
    assert logged == float(agent.head.correlation)  # the last draw's (set by the mean one step before)
    assert logged == pytest.approx(0.9 * float(agent.learner.td_average[0]) / 2.0, rel=1e-2)
    assert 0.0 < float(last["train/noise_correlation"]) < 0.9  # the errors fell below T: the schedule acted
    assert agent.learner.pop_diagnostics()["noise_correlation"] == float(agent.head.correlation)
    white = Reflect(ContinuousCueEnv(), {"network": {"hidden": [16]}}, seed=0)
    white.learn(50)
    assert white.learner.pop_diagnostics()["noise_correlation"] == 0.0  # negative control: white noise
    discrete = Reflect("CartPole-v1", {"network": {"hidden": [16]}}, seed=0)
    discrete.learn(50)
    assert "std" not in discrete.learner.pop_diagnostics()  # a categorical head has no spread


def test_unbounded_dimensions_pass_through_and_log_std_stays_in_bounds() -> None:
    head = GaussianHead(2, [-1.0, -np.inf], [1.0, np.inf], log_std_bounds=(-2.0, 0.5), seed=0)
    env = head.to_env(np.array([[3.0, 7.5]]))
    np.testing.assert_allclose(env, [[np.tanh(3.0), 7.5]], rtol=1e-6)
    head.log_std_np[:] = [5.0, -9.0]
    np.testing.assert_allclose(head.std(), np.exp([0.5, -2.0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"squash": "sigmoid"}, "unknown squash"), ({"log_std_bounds": (1.0, 0.0)}, "min < max"),
     ({"noise_correlation": 1.0}, r"noise_correlation must lie in \[0, 1\)"),
     ({"noise_correlation": -0.1}, "noise_correlation"),
     ({"noise_calm_target": -0.1}, "noise_calm_target must be a finite number >= 0"),
     ({"noise_calm_target": float("nan")}, "noise_calm_target")],
)
def test_bad_head_options_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GaussianHead(3, LOW, HIGH, **kwargs)


def test_bad_action_config_is_named() -> None:
    with pytest.raises(ValueError, match="init_log_std"):
        Reflect(ContinuousCueEnv(), {"action": {"init_log_std": 9.0}})
    with pytest.raises(ValueError, match=r"action\.squash"):
        Reflect(ContinuousCueEnv(), {"action": {"squash": "sigmoid"}})
    with pytest.raises(ValueError, match="noise_correlation must lie in"):
        Reflect(ContinuousCueEnv(), {"action": {"noise_correlation": 1.5}})
    with pytest.raises(ValueError, match="noise_calm_target must be a finite number >= 0"):
        Reflect(ContinuousCueEnv(), {"action": {"noise_correlation": 0.9, "noise_calm_target": -1.0}})


def _cue_error(agent: Reflect, env: ContinuousCueEnv) -> float:
    half = (env.action_space.high - env.action_space.low) / 2
    errors = []
    for cue in (-1, 1):
        action, _ = agent.predict(np.array([cue], dtype=np.float32), deterministic=True)
        errors.append(float((((action - env.targets[cue]) / half) ** 2).sum()))
    return float(np.mean(errors))


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (-2.0, 4.0)])
def test_agent_learns_a_continuous_cue_task(low: float, high: float) -> None:
    env = ContinuousCueEnv(low, high)
    agent = Reflect(ContinuousCueEnv(low, high), CUE, seed=0)
    before = _cue_error(agent, env)
    agent.learn(2000)
    assert before > 0.2  # the untrained policy ignores the cue
    assert _cue_error(agent, env) < 0.02
    assert (agent.head.log_std.numpy() < -1.0).all()  # it became more certain


def _with_decay(decay: float, gate: float = 0.9) -> dict:
    return {**CUE, "learner": {"entropy_coef": 0.0, "actor_readout_decay": decay, "readout_decay_gate": gate}}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(("decay", "gate", "applied"), [(0.01, 0.0, 0.01), (0.01, 0.9, 0.0), (0.0, 0.0, 0.0)])
def test_actor_readout_decay_shrinks_the_readout_after_each_update(backend: str, decay: float, gate: float,
                                                                    applied: float) -> None:
    """Gate 0: every step decays; gate 0.9: a policy whose draws are not at their bound is left alone."""
    if backend == "numba":
        pytest.importorskip("numba")
    env = ContinuousCueEnv()
    plain = Reflect(ContinuousCueEnv(), CUE, seed=0, backend=backend)
    decayed = Reflect(ContinuousCueEnv(), _with_decay(decay, gate), seed=0, backend=backend)
    initial = plain.actor.readout.packed.detach().clone()
    for agent in (plain, decayed):  # one step each, the same draw: the same update, then the decay
        obs, _ = env.reset(seed=0)
        agent.act(obs)
        agent.observe(-1.0, True, False, obs)
    readout, reference = decayed.actor.readout, plain.actor.readout
    assert not torch.equal(reference.packed, initial)  # the step did update the readout
    torch.testing.assert_close(readout.weight, reference.weight * (1.0 - applied), rtol=1e-6, atol=0.0)
    torch.testing.assert_close(readout.bias, reference.bias * (1.0 - applied), rtol=1e-6, atol=0.0)
    assert decayed.learner.readout_saturation < 0.01  # the untrained policy's draws are not at the bound
    torch.testing.assert_close(decayed.actor.layers[0].weight, plain.actor.layers[0].weight)  # readout only


def test_actor_readout_decay_frees_a_policy_frozen_at_its_action_bound() -> None:
    """A readout bias of 8 puts both actions at the top of their range whatever the noise draws: every
    episode pays the same, the critic learns it, and the TD-error-gated update stops for good (the negative
    control, no decay, learns nothing in 6,000 steps). The decay pulls the mean back into the range, where
    the draws differ again and the task is learned."""
    pytest.importorskip("numba")
    env = ContinuousCueEnv()
    errors = {}
    for decay in (0.0, 1e-3):
        agent = Reflect(ContinuousCueEnv(), _with_decay(decay), seed=0, backend="numba")
        with torch.no_grad():
            agent.actor.readout.bias.fill_(8.0)
        assert _cue_error(agent, env) > 2.0  # frozen at the bound
        agent.learn(6000)
        errors[decay] = _cue_error(agent, env)
    assert errors[0.0] > 2.0
    assert errors[1e-3] < 0.02


@pytest.mark.parametrize(("key", "message"), [
    ("actor_readout_decay", r"actor_readout_decay must be in \[0, 1\) \(0 turns it off\), got 1.5"),
    ("readout_decay_gate", r"readout_decay_gate must be in \[0, 1\) \(0: decay at every step\), got 1.5"),
])
def test_bad_actor_readout_decay_is_named(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Reflect(ContinuousCueEnv(), {"learner": {key: 1.5}}, seed=0)


def test_log_std_step_scale_slows_the_log_std() -> None:
    fast = Reflect(ContinuousCueEnv(), CUE, seed=0).learn(300)
    slow = Reflect(ContinuousCueEnv(), {**CUE, "action": {"log_std_lr_scale": 0.01}}, seed=0).learn(300)
    assert np.abs(fast.head.log_std.numpy()).max() > 0.2
    assert np.abs(slow.head.log_std.numpy()).max() < 0.1 * np.abs(fast.head.log_std.numpy()).max()


def test_fixed_log_std_is_not_learned() -> None:
    agent = Reflect(ContinuousCueEnv(), {**CUE, "action": {"learn_log_std": False, "init_log_std": -1.0}})
    agent.learn(500)
    assert torch.equal(agent.head.log_std, torch.full((2,), -1.0, dtype=torch.float64))


@pytest.mark.parametrize(("beta", "calm", "decay"), [(0.0, 0.0, 0.0), (0.9, 0.0, 0.0), (0.9, 0.3, 0.0),
                                                    (0.0, 0.0, 0.001)])
def test_gaussian_agent_resumes_exactly_from_a_checkpoint(tmp_path: object, beta: float, calm: float,
                                                          decay: float) -> None:
    config = {"network": {"hidden": [16]}, "action": {"noise_correlation": beta, "noise_calm_target": calm},
              "learner": {"actor_readout_decay": decay, "readout_decay_gate": 0.2}}
    agent = Reflect("Pendulum-v1", config, seed=3)
    agent.learn(300)
    path = agent.save(tmp_path / "pendulum")  # type: ignore[operator]
    agent.learn(300)
    resumed = Reflect.load(path)
    resumed.learn(300)
    assert torch.equal(resumed.head.log_std, agent.head.log_std)
    assert resumed.learner.readout_saturation == agent.learner.readout_saturation  # the decay's gate
    for ours, theirs in zip(resumed.actor.parameters(), agent.actor.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    if beta:  # negative control: the carried noise is part of the state (restarted, the run differs)
        restarted = Reflect.load(path)
        restarted.head.restart_noise()
        restarted.learn(300)
        assert not torch.equal(restarted.head.log_std, agent.head.log_std)


def test_freeze_stops_learning_and_unfreeze_resumes() -> None:
    agent = Reflect("Pendulum-v1", {"network": {"hidden": [16]}}, seed=0)
    agent.learn(200)
    weights = [p.clone() for p in agent.actor.parameters()]
    log_std = agent.head.log_std.clone()
    obs, _ = agent.env.reset(seed=1)
    agent.freeze()
    assert not agent.learning
    first = agent.act(obs[0]).copy()
    agent.reset_state()
    again = agent.act(obs[0]).copy()
    np.testing.assert_array_equal(first, again)  # deterministic and stateless across resets
    for _ in range(50):
        agent.act(obs[0])
        agent.observe(-1.0, False, False, obs[0])
    assert all(torch.equal(a, b) for a, b in zip(weights, agent.actor.parameters(), strict=True))
    assert torch.equal(log_std, agent.head.log_std)
    agent.unfreeze()
    agent.learn(50)
    assert agent.learning
    assert not all(torch.equal(a, b) for a, b in zip(weights, agent.actor.parameters(), strict=True))


def test_act_and_observe_do_not_grow_memory_after_warm_up() -> None:
    agent = Reflect("Pendulum-v1", seed=0)
    obs = np.zeros(3)

    def steps(n: int) -> None:
        for _ in range(n):
            agent.act(obs)
            agent.observe(-1.0, False, False, obs)

    # The warm-up runs under tracing: the interpreter's free lists of floats and small objects
    # fill once (about 68 KB within the first 250 traced steps) and then stay; that is not growth.
    steps(200)
    tracemalloc.start()
    steps(500)
    after_warm_up, _ = tracemalloc.get_traced_memory()
    steps(1000)
    after_more, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert after_more - after_warm_up < 2048, "act/observe keep allocating memory per step"
