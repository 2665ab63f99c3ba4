"""Which settings a resumed run may change, and which its checkpoint fixes.

A checkpoint continues one lifetime exactly: its weights, eligibility traces, critic values and normalising
statistics were built under its config. A resumed run may change only what leaves all of that meaningful:

* the schedule (``train.total_steps``, ``train.eval_every``, ``train.eval_episodes``,
  ``train.checkpoint_every``, ``train.log_every``, ``train.reward_threshold``): when to stop, evaluate,
  save and log, and which evaluation counts as solved;
* the step sizes (``learner.actor_lr``, ``learner.critic_lr``, ``learner.actor_kappa``,
  ``learner.critic_kappa``, ``learner.entropy_coef``, ``learner.baseline_rate``, ``learner.calm_target``,
  ``learner.calm_steps``, ``learner.calm_floor``, ``learner.entropy_target``, ``learner.entropy_rate``,
  ``learner.actor_readout_decay``, ``learner.readout_decay_gate``, ``action.log_std_lr_scale``): how far
  each later update moves the weights, e.g. to anneal a run;
* ``action.noise_correlation`` and ``action.noise_calm_target``: how long exploration keeps pushing one way
  (they change what is drawn next, nothing saved).

Everything else is fixed by the checkpoint: the network (its weights have that shape and were trained for
that neuron model), ``learner.gamma``, ``learner.lam`` and ``learner.critic_lam`` (the saved traces and
values were discounted with them), ``learner.third_factor``, the rest of ``action`` and ``normalize`` (the
saved head and statistics), ``train.num_envs`` (one saved state per stream), ``env_kwargs`` (the
environment itself) and ``observation_filter`` (the network's input). To change one of those, start a new
run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reflect.agents.config import ReflectConfig
from reflect.config import from_mapping, to_dict

__all__ = ["RESUMABLE_KEYS", "ResumeChange", "ResumeConfigError", "check_resume_config"]

RESUMABLE_KEYS = (
    "train.total_steps",
    "train.eval_every",
    "train.eval_episodes",
    "train.checkpoint_every",
    "train.log_every",
    "train.reward_threshold",
    "learner.actor_lr",
    "learner.critic_lr",
    "learner.actor_kappa",
    "learner.critic_kappa",
    "learner.entropy_coef",
    "learner.calm_target",
    "learner.calm_steps",
    "learner.calm_floor",
    "learner.entropy_target",
    "learner.entropy_rate",
    "learner.baseline_rate",
    "learner.actor_readout_decay",
    "learner.readout_decay_gate",
    "action.log_std_lr_scale",
    "action.noise_correlation",
    "action.noise_calm_target",
)


class ResumeConfigError(ValueError):
    """A resumed run asks to change a setting its checkpoint fixes."""


@dataclass(frozen=True)
class ResumeChange:
    """One setting a resumed run changes: its dotted key, the checkpoint's value and the new one."""

    key: str
    saved: Any
    value: Any

    def __str__(self) -> str:
        return f"{self.key} {_show(self.saved)} -> {_show(self.value)}"


def check_resume_config(
    saved: Mapping[str, Any] | ReflectConfig, config: ReflectConfig
) -> list[ResumeChange]:
    """The settings ``config`` changes from a checkpoint's ``saved`` config (all of them in
    :data:`RESUMABLE_KEYS`), in config order.

    Raises:
        ResumeConfigError: a changed setting is not resumable; the message names the first one, both
            values and what to do instead.
    """
    before = saved if isinstance(saved, ReflectConfig) else from_mapping(ReflectConfig, saved)
    changes = [
        ResumeChange(key, old, new) for key, old, new in _differences(to_dict(before), to_dict(config))
    ]
    for change in changes:
        if change.key not in RESUMABLE_KEYS:
            raise ResumeConfigError(
                f"'{change.key}' cannot change on resume ({change}): the checkpoint's state was built "
                "with it; drop that --set or --config entry, or start a new run. Settings that may "
                f"change on resume: {_resumable_by_section()}"
            )
    return changes


def _resumable_by_section() -> str:
    """``train: total_steps, eval_every, ...; learner: actor_lr, ...; action: log_std_lr_scale, ...``."""
    sections: dict[str, list[str]] = {}
    for key in RESUMABLE_KEYS:
        section, name = key.split(".")
        sections.setdefault(section, []).append(name)
    return "; ".join(f"{section}: {', '.join(names)}" for section, names in sections.items())


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` of every setting that differs: each key of a section
    (``learner.lam``), and ``env_kwargs`` as a whole (it is set as one mapping)."""
    found: list[tuple[str, Any, Any]] = []
    for section in dict.fromkeys([*old, *new]):
        a, b = old.get(section), new.get(section)
        if section != "env_kwargs" and isinstance(a, Mapping) and isinstance(b, Mapping):
            found.extend((f"{section}.{key}", a.get(key), b.get(key))
                         for key in dict.fromkeys([*a, *b]) if a.get(key) != b.get(key))
        elif a != b:
            found.append((section, a, b))
    return found


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
