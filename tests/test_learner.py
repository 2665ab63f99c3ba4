"""ReflectLearner: episode ends, streams, variants, misuse, checkpoint state."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from reflect.learning import CategoricalHead, LearnerConfig, ReflectLearner, obgd_step_size
from reflect.spiking import SpikingNetwork
from reflect.traces.engine import TraceEngine


def make_learner(streams: int = 1, seed: int = 0, **config: float | str) -> ReflectLearner:
    torch.manual_seed(seed)
    actor = SpikingNetwork(3, 2, (16,))
    third = config.get("third_factor", "td")
    critic = SpikingNetwork(3, 1, (16,)) if third == "td" else None
    return ReflectLearner(
        actor,
        critic,
        CategoricalHead(2, seed=seed),
        LearnerConfig(**config),  # type: ignore[arg-type]
        num_streams=streams,
    )


def obs(seed: int, streams: int = 1) -> torch.Tensor:
    return torch.randn(streams, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("terminated", [True, False])
def test_terminated_does_not_bootstrap_and_truncated_does(terminated: bool) -> None:
    learner = make_learner(gamma=0.9)
    assert learner.critic_engine is not None
    critic_copy = copy.deepcopy(learner.critic_engine.network)
    reference = TraceEngine(critic_copy, 1)
    x0, final = obs(1), obs(2)
    learner.act(x0)
    v0 = float(reference.step(x0)[0, 0])
    v_final = float(reference.step(final)[0, 0])
    delta = learner.observe(np.array([1.5]), np.array([terminated]), np.array([not terminated]), final)
    expected = 1.5 - v0 if terminated else 1.5 + 0.9 * v_final - v0
    assert abs(v_final) > 1e-4  # the bootstrap term is not trivially zero
    assert float(delta[0]) == pytest.approx(expected, rel=1e-6, abs=1e-7)
    # both reset the stream: state and traces zero, the critic waits for the new episode's observation
    assert all(float(t.abs().sum()) == 0.0 for t in learner.actor_engine.state_tensors().values())
    assert float(learner.actor.z.abs().sum()) == 0.0
    assert learner.critic is not None and float(learner.critic.z.abs().sum()) == 0.0
    assert learner.critic_pending.all()


def test_a_step_within_an_episode_bootstraps_and_keeps_the_traces() -> None:
    learner = make_learner(gamma=0.9)
    learner.act(obs(1))
    learner.observe(np.array([1.0]), np.array([False]), np.array([False]), obs(2))
    assert float(learner.actor.z.abs().sum()) > 0.0
    assert not learner.critic_pending.any()


def test_observe_updates_weights_by_the_obgd_bounded_step() -> None:
    learner = make_learner(actor_lr=0.5, actor_kappa=2.0)
    before = [p.clone() for p in learner.actor.params]
    learner.act(obs(1))
    delta = float(learner.observe(np.array([2.0]), np.array([False]), np.array([False]), obs(2))[0])
    z = learner.actor.z[0]
    step = obgd_step_size(0.5, 2.0, delta, float(z.abs().sum()))
    change = torch.cat([(p - b).flatten() for p, b in zip(learner.actor.params, before, strict=True)])
    assert step < 0.5  # the bound is active on this case
    torch.testing.assert_close(change, step * delta * z, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bound_active", [True, False])
def test_the_calm_step_scales_the_actors_bounded_step_exactly(bound_active: bool) -> None:
    """With the running mean |delta| at a quarter of ``calm_target``, the actor's change is a quarter of
    the plain learner's (whether or not ObGD's bound is active), and the critic's is the same."""
    lr = 0.5 if bound_active else 0.01
    plain = make_learner(actor_lr=lr, actor_kappa=2.0)
    calm = make_learner(actor_lr=lr, actor_kappa=2.0, calm_target=0.4, calm_steps=10**9)
    calm.td_average[0] = 0.1  # below the target: scale 0.25 (the 1e-9 rate leaves it there)
    changes = []
    for learner in (plain, calm):
        assert learner.critic is not None
        before = [p.clone() for p in (*learner.actor.params, *learner.critic.params)]
        learner.act(obs(1))
        learner.observe(np.array([2.0]), np.array([False]), np.array([False]), obs(2))
        after = (*learner.actor.params, *learner.critic.params)
        changes.append([(p - b).flatten() for p, b in zip(after, before, strict=True)])
    n_actor = len(plain.actor.params)
    step = obgd_step_size(lr, 2.0, 2.0, float(plain.actor.z[0].abs().sum()))
    assert (step < lr) == bound_active
    for k, (plain_change, calm_change) in enumerate(zip(*changes, strict=True)):
        expected = 0.25 * plain_change if k < n_actor else plain_change
        assert float(plain_change.abs().max()) > 1e-4  # far above the rounding
        # float32 weights: each change carries the rounding of two weights (about 1e-7)
        torch.testing.assert_close(calm_change, expected, rtol=1e-4, atol=3e-7)
    assert plain.stats.pop()["actor_step_scale"] == 1.0
    assert calm.stats.pop()["actor_step_scale"] == pytest.approx(0.25, rel=1e-6)


@pytest.mark.parametrize(("floor", "expected"), [(0.0, 0.25), (0.1, 0.25), (0.5, 0.5), (1.0, 1.0)])
def test_the_calm_floor_is_the_least_scale_of_the_actors_step(floor: float, expected: float) -> None:
    learner = make_learner(calm_target=0.4, calm_steps=10**9, calm_floor=floor)
    learner.td_average[0] = 0.1  # a quarter of the target
    learner.act(obs(1))
    learner.observe(np.array([2.0]), np.array([False]), np.array([False]), obs(2))
    assert learner.stats.pop()["actor_step_scale"] == pytest.approx(expected, rel=1e-6)


def test_the_calm_average_follows_the_td_errors_and_survives_a_checkpoint() -> None:
    learner = make_learner(calm_target=0.5, calm_steps=4)
    assert learner.td_average[0] == 0.5  # starts at the target: scale 1 until the errors fall
    learner.act(obs(1))
    delta = float(learner.observe(np.array([1.0]), np.array([False]), np.array([False]), obs(2))[0])
    assert learner.td_average[0] == pytest.approx(0.5 + 0.25 * (abs(delta) - 0.5))
    state = learner.state_dict()
    other = make_learner(calm_target=0.5, calm_steps=4)
    other.load_state_dict(state)
    assert other.td_average[0] == learner.td_average[0]
    del state["td_average"]  # a checkpoint from before the calm step
    other.load_state_dict(state)
    assert other.td_average[0] == 0.5


def test_critic_lam_sets_the_value_traces_decay_only() -> None:
    """``critic_lam`` 0 gives the critic the traces of a learner whose shared lambda is 0 (the critic sees
    the same observations and rewards, whatever the actor does), while the actor's traces stay those of
    the learner whose shared lambda is 0.8."""
    own = make_learner(gamma=0.9, lam=0.8, critic_lam=0.0)
    shared = make_learner(gamma=0.9, lam=0.8)
    one_step = make_learner(gamma=0.9, lam=0.0)
    assert own.critic is not None and shared.critic is not None and one_step.critic is not None
    assert (own.actor.decay, own.critic.decay) == pytest.approx((0.72, 0.0))
    assert (shared.actor.decay, shared.critic.decay) == pytest.approx((0.72, 0.72))
    for learner in (own, shared, one_step):
        for t in range(3):
            learner.act(obs(t))
            learner.observe(np.array([1.0]), np.array([False]), np.array([False]), obs(t + 1))
    torch.testing.assert_close(own.actor.z, shared.actor.z)
    torch.testing.assert_close(own.critic.z, one_step.critic.z)
    assert float((shared.critic.z - own.critic.z).abs().max()) > 1e-4  # the shared lambda remembers


def _steps(learner: ReflectLearner, count: int, seed: int = 0) -> None:
    for t in range(count):
        learner.act(obs(seed + t, learner.num_streams))
        streams = learner.num_streams
        learner.observe(np.ones(streams), np.zeros(streams, bool), np.zeros(streams, bool),
                        obs(seed + t + 1, streams))


@pytest.mark.parametrize(("target", "rising"), [(1.0, True), (0.0, False)])
def test_the_entropy_coefficient_moves_towards_its_target(target: float, rising: bool) -> None:
    """Above log 2 (the most two actions have) the coefficient grows every step, up to 1; at 0 it shrinks
    every step, down to 1e-6; without a target it stays at ``entropy_coef``."""
    learner = make_learner(streams=2, entropy_target=target, entropy_rate=0.5, entropy_coef=0.01)
    fixed = make_learner(streams=2, entropy_coef=0.01)
    seen = []
    for t in range(40):
        _steps(learner, 1, seed=t)
        _steps(fixed, 1, seed=t)
        seen.append(float(learner.entropy_coef[0]))
    steps = np.diff([0.01, *seen])
    assert (steps >= 0.0).all() if rising else (steps <= 0.0).all()
    assert seen[-1] == (1.0 if rising else 1e-6)
    assert fixed.entropy_coef[0] == 0.01
    stats = learner.stats.pop()
    assert 0.0 < stats["entropy"] <= np.log(2.0) and stats["entropy_coef"] == pytest.approx(np.mean(
        [0.01, *seen[:-1]]))


def test_the_adapted_entropy_coefficient_survives_a_checkpoint() -> None:
    learner = make_learner(entropy_target=0.6, entropy_rate=0.2)
    _steps(learner, 5)
    state = learner.state_dict()
    other = make_learner(entropy_target=0.6, entropy_rate=0.2)
    other.load_state_dict(state)
    assert other.entropy_coef[0] == learner.entropy_coef[0] != 0.01
    del state["entropy_coef"]  # a checkpoint from before the entropy target: starts where a new run does
    other.load_state_dict(state)
    assert other.entropy_coef[0] == 0.01


def test_an_entropy_target_starts_from_a_coefficient_it_can_adapt() -> None:
    assert make_learner(entropy_target=0.5, entropy_coef=0.0).entropy_coef[0] == 1e-6
    assert make_learner(entropy_target=0.5, entropy_coef=5.0).entropy_coef[0] == 1.0
    assert make_learner(entropy_coef=0.0).entropy_coef[0] == 0.0  # no target: as given


def test_out_of_range_learner_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="critic_lam must be in"):
        LearnerConfig(critic_lam=1.5)
    with pytest.raises(ValueError, match="entropy_rate must be > 0"):
        LearnerConfig(entropy_target=0.5, entropy_rate=0.0)
    with pytest.raises(ValueError, match="entropy_target must be a finite number of nats"):
        LearnerConfig(entropy_target=float("nan"))
    with pytest.raises(ValueError, match="calm_floor must be in"):
        LearnerConfig(calm_floor=-0.1)


def test_obgd_step_size() -> None:
    assert obgd_step_size(1.0, 2.0, 0.1, 0.2) == 1.0  # bound 0.4 < 1: plain step
    assert obgd_step_size(1.0, 2.0, 3.0, 1.0) == pytest.approx(1.0 / 6.0)
    assert obgd_step_size(0.5, 1.0, -0.5, 10.0) == pytest.approx(0.5 / 5.0)  # |delta| < 1 counts as 1


def test_reward_baseline_variant_learns_without_a_critic() -> None:
    learner = make_learner(third_factor="reward-baseline", baseline_rate=0.5)
    assert learner.critic is None
    learner.act(obs(1))
    d0 = float(learner.observe(np.array([2.0]), np.array([False]), np.array([False]), obs(2))[0])
    learner.act(obs(2))
    d1 = float(learner.observe(np.array([2.0]), np.array([False]), np.array([False]), obs(3))[0])
    assert d0 == 2.0 and d1 == pytest.approx(1.0)  # baseline moved halfway to 2


def test_act_twice_or_observe_first_is_a_clear_error() -> None:
    learner = make_learner()
    with pytest.raises(RuntimeError, match="preceding act"):
        learner.observe(np.array([0.0]), np.array([False]), np.array([False]), obs(1))
    learner.act(obs(1))
    with pytest.raises(RuntimeError, match="observe"):
        learner.act(obs(1))


def test_non_finite_reward_stops_before_the_update() -> None:
    learner = make_learner()
    before = [p.clone() for p in learner.actor.params]
    learner.act(obs(1))
    with pytest.raises(FloatingPointError, match="non-finite"):
        learner.observe(np.array([np.nan]), np.array([False]), np.array([False]), obs(2))
    assert all(torch.equal(p, b) for p, b in zip(learner.actor.params, before, strict=True))


def _tiny_steps(streams: int, end_stream0: bool) -> ReflectLearner:
    learner = make_learner(streams=streams, actor_lr=1e-30, critic_lr=1e-30)  # weights stay put
    for t in range(4):
        learner.act(obs(t, streams))
        terminated = np.array([end_stream0 and t == 1] + [False] * (streams - 1))
        learner.observe(np.zeros(streams), terminated, np.zeros(streams, dtype=bool), obs(100 + t, streams))
    learner.act(obs(9, streams))
    return learner


def test_one_stream_ending_leaves_the_other_streams_untouched() -> None:
    ended, running = _tiny_steps(2, True), _tiny_steps(2, False)
    assert ended.critic_engine is not None and running.critic_engine is not None
    for engine_a, engine_b in (
        (ended.critic_engine, running.critic_engine),
        (ended.actor_engine, running.actor_engine),
    ):
        a = {k: t.movedim(engine_a.stream_axis(k), 0) for k, t in engine_a.state_tensors().items()}
        b = {k: t.movedim(engine_b.stream_axis(k), 0) for k, t in engine_b.state_tensors().items()}
        differs0 = any(not torch.equal(a[k][0], b[k][0]) for k in a if a[k].dim() > 1)
        assert differs0  # stream 0 restarted
        for k in a:
            if a[k].dim() > 1:
                torch.testing.assert_close(a[k][1], b[k][1], rtol=0, atol=0)
    assert ended.values[1] == running.values[1]


def test_state_dict_round_trip_continues_identically() -> None:
    a = make_learner(seed=4)
    for t in range(5):
        a.act(obs(t))
        a.observe(np.array([1.0]), np.array([t == 2]), np.array([False]), obs(50 + t))
    b = make_learner(seed=9)
    b.actor_engine.network.load_state_dict(a.actor_engine.network.state_dict())
    assert a.critic_engine is not None and b.critic_engine is not None
    b.critic_engine.network.load_state_dict(a.critic_engine.network.state_dict())
    b.load_state_dict(a.state_dict())
    for t in range(5):
        assert np.array_equal(a.act(obs(10 + t)), b.act(obs(10 + t)))
        da = a.observe(np.array([0.5]), np.array([False]), np.array([False]), obs(60 + t))
        db = b.observe(np.array([0.5]), np.array([False]), np.array([False]), obs(60 + t))
        assert np.array_equal(da, db)
    for p, q in zip(a.actor.params, b.actor.params, strict=True):
        assert torch.equal(p, q)


def test_state_dict_between_act_and_observe_is_refused() -> None:
    learner = make_learner()
    learner.act(obs(1))
    with pytest.raises(RuntimeError, match="after observe"):
        learner.state_dict()
