"""The REFLECT actor-critic(lambda) learner: the third factor is a spiking critic's TD error.

Template functions bound into :mod:`reflect.kernels.reflect_step` (compiled or interpreted, as the
backend runs it), per stream ``b``::

    act:     at an episode's first step the critic steps on its first observation:
             V_b = critic(x_t),  fresh_b = grad_w V(h_t)     (the score with the weights it ran with)
    signal:  z_w <- gamma lambda z_w + fresh;   V' = critic(x_{t+1});   fresh = grad_w V(h_{t+1})
             delta_b = r_b + gamma (1 - terminated_b) V'_b - V_b;   V_b <- V'_b
    learn:   w <- w + (1 / B) sum_b step_b delta_b z_w,b       (ObGD)

``V(h_{t+1})`` is the critic stepped on the next observation (the *final* observation of an episode
that ended: bootstrapped on truncation, ignored on termination).
"""

from __future__ import annotations

from reflect.formulas.td import td_error
from reflect.kernels.reflect_step import (
    ACTOR_INPUT,
    ALL,
    BAD_CRITIC_TRACE,
    BAD_OBSERVATION,
    CRITIC_INPUT,
    CRITIC_KAPPA,
    CRITIC_LR,
    CRITIC_OUTPUT,
    DELTA,
    FLAGS,
    GAMMA,
    NUMBERS,
    OK,
    ONES,
    PENDING,
    RAW,
    REWARD,
    TERMINATED,
    VALUES,
)
from reflect.kernels.specialize import placeholder
from reflect.learning.learner import ReflectLearner, register_learner

TEMPLATE = ("third_factor_act", "third_factor_signal", "third_factor_learn", "third_factor_reset")
INLINE = TEMPLATE  # into the REFLECT step (compiles faster than separate functions)


# bound sub-steps (see reflect.kernels.reflect_step)
prepare_input = copy_rows = network_forward = network_reset = traces_fresh = traces_absorb = placeholder
traces_reset = bounded_update = placeholder


def third_factor_act(critic, critic_traces, io):
    pending = io[FLAGS][PENDING]
    any_pending = False
    for b in range(pending.shape[0]):
        if pending[b]:
            any_pending = True
    if not any_pending:
        return
    copy_rows(io[ACTOR_INPUT], io[CRITIC_INPUT], io[RAW].shape[1])
    network_forward(critic, io[FLAGS][ALL][0], pending)  # traces on
    out, values = io[CRITIC_OUTPUT], io[NUMBERS][VALUES]
    for b in range(pending.shape[0]):
        if pending[b]:
            values[b] = out[b, 0] + 0.0
    traces_fresh(critic_traces, critic, io[ONES], pending)
    for b in range(pending.shape[0]):
        pending[b] = False


def third_factor_signal(norm, critic, critic_traces, io, settings):
    if not prepare_input(norm, io[RAW], io[CRITIC_INPUT], False):
        return BAD_OBSERVATION
    traces_absorb(critic_traces)
    network_forward(critic, io[FLAGS][ALL][0], io[FLAGS][ALL])  # traces on
    traces_fresh(critic_traces, critic, io[ONES], io[FLAGS][ALL])
    out, values, delta = io[CRITIC_OUTPUT], io[NUMBERS][VALUES], io[NUMBERS][DELTA]
    reward, terminated = io[NUMBERS][REWARD], io[FLAGS][TERMINATED]
    for b in range(delta.shape[0]):
        next_value = out[b, 0] + 0.0
        delta[b] = td_error(reward[b], terminated[b], settings[GAMMA], next_value, values[b])
        values[b] = next_value
    return OK


def third_factor_learn(critic_traces, io, settings, sums):
    lr, kappa = settings[CRITIC_LR], settings[CRITIC_KAPPA]
    if bounded_update(critic_traces, io[NUMBERS][DELTA], lr, kappa, sums) != OK:
        return BAD_CRITIC_TRACE
    return OK


def third_factor_reset(critic, critic_traces, io, done):
    network_reset(critic, done)
    traces_reset(critic_traces, done)
    pending = io[FLAGS][PENDING]
    for b in range(done.shape[0]):
        if done[b]:
            pending[b] = True


class ActorCriticLearner(ReflectLearner):
    """REFLECT with a spiking critic (``learner.third_factor: td``); see the module docstring."""

    third_factor = "td"
    uses_critic = True
    template = __name__


register_learner(ActorCriticLearner)
