"""One whole single-stream ``act`` of a Gaussian policy as one compiled call.

The three kernels of an action - the observation normaliser (:mod:`reflect.kernels.normalize`), the
actor's step with its eligibility traces (:mod:`reflect.kernels.network`) and the Gaussian head's
sampling and squashing (:mod:`reflect.kernels.gaussian`) - composed inside one compiled function::

    x_t = clip((obs - mean) / sqrt(var + eps), -c, c)      (statistics updated first while learning)
    o_t = actor(x_t)                                      (state and traces advance)
    u_t = o_t + sigma * eps_t,   a_t = c + s * tanh(u_t)   (``eps_t`` drawn by the head's Generator)

It runs the very same arithmetic as the three separate calls (so the same bits) and costs one call
instead of about a dozen Python frames and three dispatches; that matters most in a control loop,
where each tick finds less of the interpreter's state in the caches than a tight benchmark loop does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from reflect.kernels import bind, jit
from reflect.kernels.gaussian import _sample_to_env
from reflect.kernels.network import _forward
from reflect.kernels.normalize import _network_input, normalizer_buffers, normalizer_settings

if TYPE_CHECKING:
    from reflect.envs.normalization import ObservationNormalizer
    from reflect.learning.heads import GaussianHead
    from reflect.traces.engine import TraceEngine


@jit
def _act(row, mean, var, inputs, forward_args, mu, raw, std, center, scale, bounded, squash, env,
         normalize, count, update, clip, epsilon, traces, deterministic):
    if not _network_input(row, mean, var, normalize, count, update, clip, epsilon, inputs):
        return False
    _forward(*forward_args, traces)  # type: ignore[call-arg]
    _sample_to_env(mu, raw, std, center, scale, bounded, squash, env, deterministic)
    return True


class FusedGaussianAct:
    """The single-stream act of one agent, bound to its normaliser, actor engine and head buffers.

    ``__call__`` takes the observation already copied into :attr:`row` (``[D]`` float64) and returns
    whether it was finite (nothing changes otherwise). The pre-squash action is then in ``head``'s
    sample buffer and the environment action in its env buffer, as after ``head.sample_for_env``.
    The normaliser's statistics must be updated in place (they are) for the binding to stay valid.
    """

    def __init__(self, normalizer: ObservationNormalizer | None, engine: TraceEngine,
                 head: GaussianHead) -> None:
        compiled = engine.compiled
        if compiled is None or not head.compiled or engine.batch_size != 1:
            raise ValueError("the fused act needs the compiled engine and head, for one stream")
        if normalizer is not None and normalizer.rms.shape != (engine.network.in_features,):
            raise ValueError("the normaliser's shape does not match the actor's input")
        self.normalizer, self.head = normalizer, head
        dims = engine.network.in_features
        self.row = np.zeros(dims)
        head.prepare(1)
        mean, var = normalizer_buffers(normalizer, dims)
        inputs = compiled.zs[0][0, :dims]  # the actor's input buffer: normalised straight into it
        self.raw, self.env = head._raw, head._env
        self._call = bind(
            _act,
            (self.row, mean, var, inputs, compiled.forward_args, compiled.output, head._raw, head._std,
             head.center, head.scale, head.bounded, head._squash_code, head._env, normalizer is not None),
            (0, True, 1.0, 1.0, True, True),
        )
        self.inputs = compiled.zs[0][:, :dims]

    def __call__(self, learning: bool, deterministic: bool) -> bool:
        """Normalise :attr:`row` (updating the statistics while ``learning``), step the actor (with
        traces while ``learning``) and sample (the mode when ``deterministic``)."""
        if not deterministic:
            self.head.rng.standard_normal(out=self.raw)
        count, clip, epsilon = normalizer_settings(self.normalizer)
        update = learning and self.normalizer is not None
        if not self._call(count, update, clip, epsilon, learning, deterministic):
            return False
        if update:
            self.normalizer.rms.count += 1  # type: ignore[union-attr]
        return True

