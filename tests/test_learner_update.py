"""The REFLECT update equals a hand-computed actor-critic(lambda) update (float64, autograd oracle).

The oracle recomputes every per-step gradient by autograd through all past steps, with each past step
using the weights it actually ran with (``var + (w_used - w_now).detach()``), then applies::

    z_theta <- gamma lambda z_theta + grad log pi(a_t | h_t) + c sign(delta_t) grad H_t
    z_w     <- gamma lambda z_w + grad V(h_t)
    delta_t  = r_t + gamma V(h_{t+1}) - V(h_t)
    p       <- p + alpha / max(1, kappa alpha max(|delta|, 1) ||z||_1) * delta * z
    c       <- clip(c exp(rate (H_target - H_t)), 1e-6, 1)     (with an entropy target only)

For one non-recurrent LIF layer with D-RTRL traces and a linear readout the two must agree to round-off.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from reflect.learning import CategoricalHead, LearnerConfig, ReflectLearner
from reflect.spiking import SpikingNetwork

T = 5


def _nets(seed: int = 3) -> tuple[SpikingNetwork, SpikingNetwork]:
    torch.manual_seed(seed)
    actor = SpikingNetwork(3, 2, (6,), weight_scale=3.0, readout_scale=2.0).double()
    critic = SpikingNetwork(3, 1, (5,), weight_scale=3.0, readout_scale=2.0).double()
    return actor, critic


def _outputs_at(
    net: SpikingNetwork, var: dict[str, torch.Tensor], used: list[dict[str, torch.Tensor]], xs: torch.Tensor
) -> torch.Tensor:
    """Readout at the last of ``xs`` ``[k+1, 1, in]``; step ``j`` runs with weights ``used[j]``."""
    state = None
    out = xs.new_zeros(())
    for j, x in enumerate(xs):
        params = {name: var[name] + (used[j][name] - var[name]).detach() for name in var}
        out, state = functional_call(net, params, (x, state))
    return out


def _flat_l1(tensors: dict[str, torch.Tensor]) -> float:
    return float(sum(t.abs().sum() for t in tensors.values()))


def _obgd(
    params: dict[str, torch.Tensor], z: dict[str, torch.Tensor], delta: float, lr: float, kappa: float
) -> dict[str, torch.Tensor]:
    bound = kappa * lr * max(abs(delta), 1.0) * _flat_l1(z)
    step = lr / bound if bound > 1.0 else lr
    return {name: params[name] + step * delta * z[name] for name in params}


def reference_update(
    actor: SpikingNetwork,
    critic: SpikingNetwork,
    xs: torch.Tensor,
    actions: list[int],
    rewards: list[float],
    config: LearnerConfig,
) -> tuple[dict, dict]:
    """Actor and critic weights after ``T`` online actor-critic(lambda) steps, by autograd."""
    theta = {n: p.detach().clone() for n, p in actor.named_parameters()}
    w = {n: p.detach().clone() for n, p in critic.named_parameters()}
    theta_used: list[dict] = []  # actor weights used at step j
    w_used: list[dict] = []  # critic weights used at step j
    z_theta = {n: torch.zeros_like(p) for n, p in theta.items()}
    z_w = {n: torch.zeros_like(p) for n, p in w.items()}
    decay = config.gamma * config.lam
    coefficient = config.initial_entropy_coef
    for t in range(T):
        theta_used.append(theta)
        if t == 0:
            w_used.append(w)
        # critic value and gradient at h_t
        w_var = {n: p.clone().requires_grad_(True) for n, p in w.items()}
        v_t = _outputs_at(critic, w_var, w_used, xs[: t + 1])[0, 0]
        f_t = dict(zip(w_var, torch.autograd.grad(v_t, list(w_var.values())), strict=True))
        # V(h_{t+1}) with the critic weights of this step (before its update)
        w_used.append(w)
        with torch.no_grad():
            v_next = float(_outputs_at(critic, w, w_used, xs[: t + 2])[0, 0])
        delta = rewards[t] + config.gamma * v_next - float(v_t.detach())
        # actor score and entropy gradient at h_t
        t_var = {n: p.clone().requires_grad_(True) for n, p in theta.items()}
        logits = _outputs_at(actor, t_var, theta_used, xs[: t + 1])[0]
        log_p = torch.log_softmax(logits, dim=0)
        entropy = -(log_p.exp() * log_p).sum()
        objective = log_p[actions[t]] + coefficient * float(np.sign(delta)) * entropy
        g_t = dict(zip(t_var, torch.autograd.grad(objective, list(t_var.values())), strict=True))
        z_theta = {n: decay * z_theta[n] + g_t[n] for n in z_theta}
        z_w = {n: decay * z_w[n] + f_t[n] for n in z_w}
        theta = _obgd(theta, z_theta, delta, config.actor_lr, config.actor_kappa)
        w = _obgd(w, z_w, delta, config.critic_lr, config.critic_kappa)
        if config.entropy_target is not None:
            change = np.exp(config.entropy_rate * (config.entropy_target - float(entropy.detach())))
            coefficient = float(np.clip(coefficient * change, 1e-6, 1.0))
    return theta, w


def run_learner(config: LearnerConfig, algorithm: str = "d-rtrl") -> tuple[dict, dict, dict, dict, list]:
    actor, critic = _nets()
    start_actor = {n: t.clone() for n, t in actor.state_dict().items()}
    start_critic = {n: t.clone() for n, t in critic.state_dict().items()}
    torch.manual_seed(11)
    xs = 1.5 * torch.randn(T + 1, 1, 3, dtype=torch.float64)
    rewards = [0.5, -1.0, 2.0, 0.0, 1.0]
    learner = ReflectLearner(actor, critic, CategoricalHead(2, seed=5), config, trace_algorithm=algorithm)
    actions = []
    for t in range(T):
        actions.append(int(learner.act(xs[t])[0]))
        learner.observe(np.array([rewards[t]]), np.array([False]), np.array([False]), xs[t + 1])
    actor_after = {n: p.detach().clone() for n, p in actor.named_parameters()}
    critic_after = {n: p.detach().clone() for n, p in critic.named_parameters()}
    actor.load_state_dict(start_actor)
    critic.load_state_dict(start_critic)
    return (
        actor_after,
        critic_after,
        {"actor": actor, "critic": critic, "xs": xs},
        {"rewards": rewards},
        actions,
    )


CONFIG = LearnerConfig(
    gamma=0.9, lam=0.7, actor_lr=0.3, critic_lr=0.2, actor_kappa=2.0, critic_kappa=1.5, entropy_coef=0.05
)


def _max_error(a: dict, b: dict) -> float:
    return max(float((a[n] - b[n]).abs().max() / b[n].abs().max().clamp_min(1e-12)) for n in b)


def test_three_factor_update_equals_hand_computed_actor_critic_lambda() -> None:
    actor_after, critic_after, nets, data, actions = run_learner(CONFIG)
    theta, w = reference_update(nets["actor"], nets["critic"], nets["xs"], actions, data["rewards"], CONFIG)
    assert any(float((actor_after[n] - nets["actor"].state_dict()[n]).abs().max()) > 1e-3 for n in theta)
    assert _max_error(actor_after, theta) < 1e-10
    assert _max_error(critic_after, w) < 1e-10


def test_hand_computed_update_detects_a_wrong_lambda() -> None:
    """Negative control: the oracle with another lambda disagrees with the learner."""
    actor_after, critic_after, nets, data, actions = run_learner(CONFIG)
    other = LearnerConfig(**{**CONFIG.__dict__, "lam": 0.0})
    theta, w = reference_update(nets["actor"], nets["critic"], nets["xs"], actions, data["rewards"], other)
    assert _max_error(actor_after, theta) > 1e-3
    assert _max_error(critic_after, w) > 1e-3


@pytest.mark.parametrize("algorithm", ["pp-prop"])
def test_pp_prop_learner_matches_the_oracle_for_default_lif(algorithm: str) -> None:
    """pp-prop is exact for LIF with a detached reset and alpha_x = beta, so the update matches too."""
    actor_after, critic_after, nets, data, actions = run_learner(CONFIG, algorithm)
    theta, w = reference_update(nets["actor"], nets["critic"], nets["xs"], actions, data["rewards"], CONFIG)
    assert _max_error(actor_after, theta) < 1e-10
    assert _max_error(critic_after, w) < 1e-10


# a target above log 2 (the most two actions have) and a fast rate: the coefficient grows every step
ADAPTING = LearnerConfig(**{**CONFIG.__dict__, "entropy_target": 0.9, "entropy_rate": 3.0})


def test_the_entropy_target_adapts_the_coefficient_as_the_oracle_does() -> None:
    actor_after, critic_after, nets, data, actions = run_learner(ADAPTING)
    theta, w = reference_update(nets["actor"], nets["critic"], nets["xs"], actions, data["rewards"], ADAPTING)
    assert _max_error(actor_after, theta) < 1e-10
    assert _max_error(critic_after, w) < 1e-10
    # negative control: the same run under the fixed coefficient is another update
    fixed, _ = reference_update(nets["actor"], nets["critic"], nets["xs"], actions, data["rewards"], CONFIG)
    assert _max_error(actor_after, fixed) > 1e-4
