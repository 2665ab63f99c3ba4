"""One whole single-stream learning update (``observe``) of a continuous agent as one compiled call.

The steps of :meth:`reflect.learning.reflect_learner.ReflectLearner.observe` for one stream, composed
from the same compiled kernels, in the same order::

    x'      = normalise(next_obs)                               (statistics unchanged)
    z_w    <- gamma lambda z_w + grad V(h_t)                   (the critic's trace absorbs its saved score)
    V'      = critic(x');  fresh <- grad V(h_{t+1})
    delta   = r + gamma (1 - terminated) V' - V(h_t)            -> stop here if it is not finite
    signal  = d/d mu [log pi(u | mu) + c sign(delta) H]     (and the log-std score)
    z_theta <- gamma lambda z_theta + grad_theta;  the log-std trace likewise
    theta  += step_theta delta z_theta (log-std too, then sigma refreshed);  w += step_w delta z_w

so the result is the same bits as the separate calls (tested). The caller raises the learner's own
errors from the returned status: the kernel stops where the Python path would raise (before any weight
changes for a non-finite ``delta``; after the updates, as there, for a non-finite trace norm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from reflect.kernels import bind, jit
from reflect.kernels.gaussian import _refresh, _score
from reflect.kernels.network import _backward, _forward
from reflect.kernels.normalize import _network_input, normalizer_buffers, normalizer_settings
from reflect.kernels.updates import _apply_one, _decay_add

if TYPE_CHECKING:
    from reflect.envs.normalization import ObservationNormalizer
    from reflect.learning.heads import GaussianHead
    from reflect.learning.reflect_learner import ReflectLearner
    from reflect.learning.trace_group import TraceGroup

OK, BAD_OBSERVATION, BAD_DELTA, BAD_CRITIC_TRACE, BAD_ACTOR_TRACE = range(5)
# entries of the results array
DELTA, ACTOR_STEP, ACTOR_L1, CRITIC_STEP, CRITIC_L1 = range(5)


@jit
def _observe(row, mean, var, normalize, critic_inputs, critic_forward, critic_output, critic_fresh,
             critic_absorb, score_args, actor_backward, extra_accumulate, actor_update, refresh_args,
             critic_update, values, gamma, entropy_coef, entropy_weight, results,
             count, clip, epsilon, reward, terminated, actor_lr, actor_kappa, critic_lr, critic_kappa):
    if not _network_input(row, mean, var, normalize, count, False, clip, epsilon, critic_inputs):
        return BAD_OBSERVATION
    _decay_add(*critic_absorb)
    _forward(*critic_forward, True)  # type: ignore[call-arg]
    next_value = critic_output[0, 0] + 0.0
    _backward(*critic_fresh)
    delta = reward + (0.0 if terminated else gamma * next_value) - values[0]
    values[0] = next_value
    results[DELTA] = delta
    if not np.isfinite(delta):
        return BAD_DELTA
    entropy_weight[0] = entropy_coef * (1.0 if delta > 0 else -1.0 if delta < 0 else 0.0)
    _score(*score_args)
    _backward(*actor_backward)
    _decay_add(*extra_accumulate)
    actor_step, actor_l1 = _apply_one(*actor_update, actor_lr, actor_kappa, delta)  # type: ignore[call-arg]
    _refresh(*refresh_args)
    critic_step, critic_l1 = _apply_one(*critic_update, critic_lr, critic_kappa, delta)  # type: ignore[call-arg]
    results[ACTOR_STEP], results[ACTOR_L1] = actor_step, actor_l1
    results[CRITIC_STEP], results[CRITIC_L1] = critic_step, critic_l1
    if not np.isfinite(critic_l1):
        return BAD_CRITIC_TRACE
    if not np.isfinite(actor_l1):
        return BAD_ACTOR_TRACE
    return OK


class FusedObserve:
    """The single-stream learning update of one agent, bound to its buffers.

    ``__call__`` takes the next observation already copied into :attr:`row` (``[D]`` float64) and
    returns a status (``OK`` or what the caller must raise); :attr:`results` then holds ``delta``, the
    step sizes and the trace norms. Built only for a TD learner with a compiled critic and actor engine
    and a compiled Gaussian head, for one stream.
    """

    def __init__(self, normalizer: ObservationNormalizer | None, learner: ReflectLearner) -> None:
        head, actor, critic = learner.head, learner.actor, learner.critic
        critic_engine = learner.critic_engine
        if (
            critic is None or critic_engine is None or critic_engine.compiled is None
            or learner.actor_engine.compiled is None or learner.num_streams != 1
            or not getattr(head, "compiled", False) or actor.compiled_update is None
            or critic.compiled_update is None
        ):
            raise ValueError("the fused observe needs a compiled critic, actor and Gaussian head, one stream")
        head = _gaussian(head)
        self.normalizer, self.learner = normalizer, learner
        dims = critic_engine.network.in_features
        self.row = np.zeros(dims)
        self.results = np.zeros(5)
        compiled_critic = critic_engine.compiled
        mean, var = normalizer_buffers(normalizer, dims)
        config = learner.config
        mu = learner.actor_engine.compiled.output
        self._call = bind(_observe, (
            self.row, mean, var, normalizer is not None,
            compiled_critic.zs[0][0, :dims], compiled_critic.forward_args, compiled_critic.output,
            _backward_args(critic, critic.fresh_views_np, 0.0), _absorb_args(critic),
            (mu, head._raw, head._inv_var, learner._entropy_weight, actor.signal_np, head._grad,
             head.learn_log_std),
            _backward_args(actor, tuple(actor.views_np), actor.decay), _extra_args(actor),
            actor.compiled_update.bound, (head.log_std_np, *head.log_std_bounds, head._std, head._inv_var),
            critic.compiled_update.bound, learner.values, float(config.gamma), float(config.entropy_coef),
            learner._entropy_weight, self.results,
        ), (0, 1.0, 1.0, 1.0, True, 1.0, 1.0, 1.0, 1.0))

    def __call__(self, reward: float, terminated: bool) -> int:
        """The update for ``reward`` and whether the episode ``terminated`` (see the module docstring)."""
        learner = self.learner
        actor, critic = learner.actor, learner.critic
        assert critic is not None
        count, clip, epsilon = normalizer_settings(self.normalizer)
        return int(self._call(count, clip, epsilon, float(reward), bool(terminated), actor.lr, actor.kappa,
                              critic.lr, critic.kappa))


def _gaussian(head: object) -> GaussianHead:
    from reflect.learning.heads import GaussianHead

    if not isinstance(head, GaussianHead):
        raise ValueError("the fused observe needs a Gaussian head")
    return head


def _backward_args(group: TraceGroup, views: tuple[np.ndarray, ...], decay: float) -> tuple:
    compiled = group.engine.compiled
    assert compiled is not None
    return (group.signal_np, views, compiled.dtype(decay), *compiled.backward_tail)


def _absorb_args(group: TraceGroup) -> tuple:
    return (group.z_np, group.fresh_np, group.z_np.dtype.type(group.decay))


def _extra_args(group: TraceGroup) -> tuple:
    if group.extra_grad is None:  # nothing to decay: empty arrays make the loop a no-op
        empty = np.zeros((1, 0))
        return (empty, empty, 0.0)
    return (group.extra_z, group.extra_grad, float(group.decay))
