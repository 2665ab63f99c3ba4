"""Template: the REFLECT learner's act and observe, written once.

The compiled backend compiles it with the compiled sub-steps bound (:mod:`reflect.kernels.network`,
:mod:`reflect.kernels.learning_ops`, a head template); the array backends run the very same code as
Python with array sub-steps bound (:mod:`reflect.learning.array_ops`). The learner variant (a critic's
TD error, or a reward baseline) binds its own ``third_factor_*`` functions (see
:mod:`reflect.learning.actor_critic`, :mod:`reflect.learning.reward_baseline`).

Per environment step, for every stream ``b`` (no buffer of transitions anywhere)::

    act:      x_t = normalise(obs_t);  o_t = actor(x_t) (traces advance);  a_t ~ pi(. | o_t)
    observe:  delta_t = third factor (e.g. r_t + gamma (1 - terminated) V(h_{t+1}) - V(h_t))
              z_theta <- gamma lambda z_theta + grad_theta [log pi(a_t | h_t) + c sign(delta_t) H_t]
              ebar    <- ebar + rate (mean_b |delta_b| - ebar);  s = max(floor, min(1, ebar / target))
              theta   <- theta + (1 / B) sum_b s step_b delta_b z_theta,b      (ObGD step sizes step_b)
              c       <- clip(c exp(rate_c (H_target - mean_b H_t,b)))   (with an entropy target only)
              then the third factor learns (the critic's bounded update), and the streams whose
              episode ended restart (state and traces zero)

Arguments: ``norm`` (the observation normaliser), ``actor`` / ``critic`` (networks), ``head``,
``actor_traces`` / ``critic_traces`` (parameter groups), ``io`` (the step's arrays, positions below),
``settings`` (hyperparameters), ``results`` (sums of the step statistics). Each is a tuple of arrays for the
compiled backend and an object for the array backends. A non-finite observation, TD error or trace norm
returns a status before any weight changes.
"""

from __future__ import annotations

import math

from reflect.formulas.td import calm_step_scale, entropy_coef_update, entropy_weight, td_average_update
from reflect.kernels.specialize import placeholder

TEMPLATE = (
    "act", "observe", "reset_streams", "act_entry", "act_plain_entry", "observe_entry", "observe_one_entry",
    "reset_entry",
)

# io: raw observations [B, D] float64, the actor's and the critic's input buffers (the first D columns
# are the observation), their outputs, the actor's learning signal [B, O], dV/do = 1 [B, 1], numbers per
# stream [8, B] float64, flags per stream [4, B] bool
RAW, ACTOR_INPUT, CRITIC_INPUT, ACTOR_OUTPUT, CRITIC_OUTPUT, SIGNAL, ONES, NUMBERS, FLAGS = range(9)
# rows of io[NUMBERS]: reward, delta, V(h_t), entropy weight; the reward baseline in BASELINE's first entry,
# the running mean of |delta| (the calm actor step's) in TD_AVERAGE's; the policy's entropy H_t per stream;
# the entropy coefficient c in ENTROPY_COEF's first entry
REWARD, DELTA, VALUES, WEIGHTS, BASELINE, TD_AVERAGE, ENTROPY, ENTROPY_COEF = range(8)
# rows of io[FLAGS]: terminated, done (terminated or truncated), the critic waits for the episode's first
# step, and all True (also read as a non-constant ``True``, so compiled callees are not specialised on a
# literal)
TERMINATED, DONE, PENDING, ALL = range(4)
# settings (an entropy rate of 0: the coefficient stays where the learner set it)
(GAMMA, ACTOR_LR, ACTOR_KAPPA, CRITIC_LR, CRITIC_KAPPA, BASELINE_RATE, CALM_TARGET, CALM_RATE, CALM_FLOOR,
 ENTROPY_TARGET, ENTROPY_RATE) = range(11)
# results: sums over the steps since the learner's statistics were last read
(STEPS, ABS_DELTA, ACTOR_STEP, ACTOR_L1, CRITIC_STEP, CRITIC_L1, ACTOR_SCALE, ENTROPY_SUM,
 ENTROPY_COEF_SUM) = range(9)
OK, BAD_OBSERVATION, BAD_DELTA, BAD_ACTOR_TRACE, BAD_CRITIC_TRACE = range(5)


# bound sub-steps (see the module docstring)
prepare_input = network_forward = network_reset = head_sample = head_score = head_refresh = placeholder
traces_accumulate = traces_reset = bounded_update = placeholder
third_factor_act = third_factor_signal = third_factor_learn = third_factor_reset = placeholder


def act(norm, actor, critic, head, critic_traces, io, learning, deterministic):
    """Normalise ``io[RAW]`` (statistics updated while ``learning``), step the actor (with traces while
    ``learning``) and sample (the mode when ``deterministic``); returns a status."""
    if not prepare_input(norm, io[RAW], io[ACTOR_INPUT], learning):
        return BAD_OBSERVATION
    if learning:
        third_factor_act(critic, critic_traces, io)
    network_forward(actor, learning, io[FLAGS][ALL])
    head_sample(head, io[ACTOR_OUTPUT], deterministic)
    return OK


def observe(norm, actor, critic, head, actor_traces, critic_traces, io, settings, results):
    """One online update from the reward, the ``terminated`` and ``done`` flags in ``io`` and the next
    observation in ``io[RAW]``; returns a status (``OK``, or what stopped it before any weight changed)."""
    status = third_factor_signal(norm, critic, critic_traces, io, settings)
    if status != OK:
        return status
    delta, weights, entropies = io[NUMBERS][DELTA], io[NUMBERS][WEIGHTS], io[NUMBERS][ENTROPY]
    coefficient = io[NUMBERS][ENTROPY_COEF]
    total = 0.0
    for b in range(delta.shape[0]):
        if not math.isfinite(delta[b]):
            return BAD_DELTA
        weights[b] = entropy_weight(coefficient[0], delta[b])
        total += abs(delta[b])
    head_score(head, io[ACTOR_OUTPUT], weights, io[SIGNAL], entropies)
    entropy = 0.0
    for b in range(delta.shape[0]):
        entropy += entropies[b]
    entropy /= delta.shape[0]
    results[ENTROPY_SUM] += entropy
    results[ENTROPY_COEF_SUM] += coefficient[0]
    if settings[ENTROPY_RATE] > 0.0:  # the next step's coefficient
        coefficient[0] = entropy_coef_update(coefficient[0], settings[ENTROPY_RATE], settings[ENTROPY_TARGET],
                                             entropy)
    traces_accumulate(actor_traces, actor, io[SIGNAL], io[FLAGS][ALL])
    average = io[NUMBERS][TD_AVERAGE]
    average[0] = td_average_update(average[0], settings[CALM_RATE], total / delta.shape[0])
    scale = calm_step_scale(average[0], settings[CALM_TARGET], settings[CALM_FLOOR])
    # alpha * scale with kappa / scale leaves ObGD's bound as it was: every step size is scaled exactly
    if bounded_update(actor_traces, delta, settings[ACTOR_LR] * scale, settings[ACTOR_KAPPA] / scale,
                      results[ACTOR_STEP:ACTOR_L1 + 1]) != OK:
        return BAD_ACTOR_TRACE
    head_refresh(head)
    status = third_factor_learn(critic_traces, io, settings, results[CRITIC_STEP:CRITIC_L1 + 1])
    if status != OK:
        return status
    results[STEPS] += 1.0
    results[ABS_DELTA] += total / delta.shape[0]
    results[ACTOR_SCALE] += scale
    reset_streams(actor, critic, actor_traces, critic_traces, io, io[FLAGS][DONE])
    return OK


def reset_streams(actor, critic, actor_traces, critic_traces, io, done):
    """Zero network state and every trace of the streams where ``done``."""
    any_done = False
    for b in range(done.shape[0]):
        if done[b]:
            any_done = True
    if any_done:
        network_reset(actor, done)
        traces_reset(actor_traces, done)
        third_factor_reset(critic, critic_traces, io, done)


# Entries for calls from Python on the compiled backend: the arguments come in one bundle (fields:
# reflect.kernels.compiler.STEP_FIELDS), so a call unboxes one pointer instead of every array, and each
# entry reads (and reference-counts) only the fields it needs.
def act_entry(b, learning, deterministic):
    return act(b.norm, b.actor, b.critic, b.head, b.critic_traces, b.io, learning, deterministic)


def act_plain_entry(b, learning, deterministic):
    """:func:`act` when no stream waits for its critic's first step (the critic is not touched)."""
    io = b.io
    if not prepare_input(b.norm, io[RAW], io[ACTOR_INPUT], learning):
        return BAD_OBSERVATION
    network_forward(b.actor, learning, io[FLAGS][ALL])
    head_sample(b.head, io[ACTOR_OUTPUT], deterministic)
    return OK


def observe_entry(b):
    return observe(b.norm, b.actor, b.critic, b.head, b.actor_traces, b.critic_traces, b.io, b.settings,
                   b.results)


def observe_one_entry(b, reward, terminated, done):
    """:func:`observe_entry` for one stream, its reward and episode flags given as scalars."""
    io = b.io
    io[NUMBERS][REWARD, 0] = reward
    io[FLAGS][TERMINATED, 0] = terminated
    io[FLAGS][DONE, 0] = done
    return observe(b.norm, b.actor, b.critic, b.head, b.actor_traces, b.critic_traces, io, b.settings,
                   b.results)


def reset_entry(b):
    reset_streams(b.actor, b.critic, b.actor_traces, b.critic_traces, b.io, b.done)
