"""SIGINT / SIGTERM stop a ControlLoop at a tick boundary and save; resuming equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from tasks import DelayedMatchEnv

from reflect.agents import Reflect
from reflect.runtime import ControlLoop, FakeClock, GymControl

SMALL = {"network": {"hidden": [16]}}
TOTAL, STOP_AT = 120, 50


def loop_for(agent: Reflect, control: GymControl, **options: Any) -> ControlLoop:
    return control.control_loop(agent, rate_hz=1000, clock=FakeClock(), **options)


def state(agent: Reflect) -> dict[str, Any]:
    assert agent.critic is not None and agent.obs_normalizer is not None
    return {
        "actor": {k: v.clone() for k, v in agent.actor.state_dict().items()},
        "critic": {k: v.clone() for k, v in agent.critic.state_dict().items()},
        "obs_mean": agent.obs_normalizer.state_dict()["rms"]["mean"],
        "num_timesteps": agent.num_timesteps,
    }


def assert_equal_states(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["num_timesteps"] == b["num_timesteps"]
    assert torch.equal(a["obs_mean"], b["obs_mean"])
    for net in ("actor", "critic"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)


def send_at(tick: int, *signums: int) -> Any:
    def on_tick(loop: ControlLoop) -> None:
        if loop.tick == tick:
            for signum in signums:
                os.kill(os.getpid(), signum)

    return on_tick


@pytest.mark.parametrize(("signum", "ordering"), [
    (signal.SIGINT, "act-first"), (signal.SIGTERM, "act-first"), (signal.SIGINT, "sense-first"),
])
def test_a_signal_stops_saves_and_resuming_equals_the_uninterrupted_run(
    tmp_path: Path, signum: int, ordering: str
) -> None:
    env = DelayedMatchEnv()
    uninterrupted = Reflect(env, SMALL, seed=3)
    loop_for(uninterrupted, GymControl(env, seed=3), ordering=ordering).run(steps=TOTAL)

    env = DelayedMatchEnv()  # the world: it carries on while the agent is stopped and reloaded
    control = GymControl(env, seed=3)
    agent = Reflect(env, SMALL, seed=3)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    checkpoint = tmp_path / "agent.pt"
    report = loop_for(agent, control, ordering=ordering, checkpoint_path=checkpoint,
                      on_tick=send_at(STOP_AT, signum)).run(steps=TOTAL)
    assert report.stopped_by == signal.Signals(signum).name
    assert report.ticks == STOP_AT and report.checkpoint == checkpoint
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the previous handlers are back

    resumed = Reflect.load(checkpoint, env=env)
    assert resumed.num_timesteps == STOP_AT
    report = loop_for(resumed, control, ordering=ordering, checkpoint_path=checkpoint).run(
        steps=TOTAL - STOP_AT
    )
    assert report.stopped_by is None and report.num_timesteps == TOTAL
    assert_equal_states(state(resumed), state(uninterrupted))
    assert Reflect.load(checkpoint, env=DelayedMatchEnv()).num_timesteps == TOTAL


def test_a_second_ctrl_c_aborts_at_once_without_saving(tmp_path: Path) -> None:
    env = DelayedMatchEnv()
    agent = Reflect(env, SMALL, seed=0)
    handler = signal.getsignal(signal.SIGINT)
    loop = loop_for(agent, GymControl(env, seed=0), checkpoint_path=tmp_path / "agent.pt",
                    on_tick=send_at(5, signal.SIGINT, signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        loop.run(steps=20)
    assert not (tmp_path / "agent.pt").exists()
    assert signal.getsignal(signal.SIGINT) is handler
    assert not agent.learner.awaiting_observe  # usable again: the next run starts cleanly
    assert loop.run(steps=3).ticks == 3


def test_an_exception_in_a_callable_propagates_and_leaves_the_agent_usable(tmp_path: Path) -> None:
    env = DelayedMatchEnv()
    agent = Reflect(env, SMALL, seed=0)
    control = GymControl(env, seed=0)
    calls = [0]

    def failing_apply(action: Any) -> None:
        calls[0] += 1
        if calls[0] == 4:
            raise RuntimeError("motor driver fault")
        control.apply_action(action)

    loop = ControlLoop(agent, control.read_observation, failing_apply, control.reward_fn,
                       reset_fn=control.reset, rate_hz=1000, clock=FakeClock(),
                       checkpoint_path=tmp_path / "agent.pt")
    with pytest.raises(RuntimeError, match="motor driver fault"):
        loop.run(steps=10)
    assert not (tmp_path / "agent.pt").exists() and not agent.learner.awaiting_observe
    assert agent.num_timesteps == 3
