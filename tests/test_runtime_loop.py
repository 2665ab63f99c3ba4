"""ControlLoop on a fake clock: exact tick and deadline-miss counts, learning vs frozen, checkpoints."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tasks import DelayedMatchEnv

from reflect.agents import Reflect
from reflect.checkpoints import load_checkpoint
from reflect.runtime import ControlLoop, FakeClock, GymControl
from reflect.runtime.checkpointing import CheckpointSchedule

SMALL = {"network": {"hidden": [16]}}
PERIOD_NS = 2_000_000  # 500 Hz


def make(seed: int = 0, delay: int = 2) -> tuple[Reflect, GymControl]:
    env = DelayedMatchEnv(delay=delay)
    return Reflect(env, SMALL, seed=seed), GymControl(env, seed=seed)


def timed_apply(
    control: GymControl, clock: FakeClock, cost_s: float, slow: dict[int, float] | None = None
) -> Any:
    """apply_action that steps the env and takes ``cost_s`` of (fake) time, ``slow[k]`` on call k."""
    calls = [0]

    def apply(action: Any) -> None:
        calls[0] += 1
        control.apply_action(action)
        clock.advance((slow or {}).get(calls[0], cost_s))

    return apply


def loop_for(
    agent: Reflect, control: GymControl, clock: FakeClock, apply: Any, **options: Any
) -> ControlLoop:
    options.setdefault("rate_hz", 500)
    return ControlLoop(
        agent, control.read_observation, apply, control.reward_fn, reset_fn=control.reset, clock=clock,
        **options,
    )


def weights(agent: Reflect) -> dict[str, torch.Tensor]:
    state = {f"actor.{k}": v.clone() for k, v in agent.actor.state_dict().items()}
    assert agent.critic is not None
    state.update({f"critic.{k}": v.clone() for k, v in agent.critic.state_dict().items()})
    return state


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("ordering", ["act-first", "sense-first"])
def test_fake_clock_counts_ticks_misses_and_skipped_periods_exactly(ordering: str) -> None:
    agent, control = make()
    clock = FakeClock()
    # 0.5 ms a tick; tick 10 takes 5 ms (ends 3 periods after it began: 1 miss, 2 periods skipped),
    # tick 30 exactly one period (ends on its deadline: not a miss), tick 50 4.5 ms (1 miss, 2 skipped)
    apply = timed_apply(control, clock, 0.0005, {10: 0.005, 30: 0.002, 50: 0.0045})
    report = loop_for(agent, control, clock, apply, ordering=ordering).run(steps=100)
    assert (report.ticks, report.misses, report.skipped_periods) == (100, 2, 4)
    assert report.miss_fraction == pytest.approx(0.02)
    # 100 ticks + 4 skipped periods: the last tick starts at 103 periods and takes 0.5 ms
    assert report.seconds == pytest.approx(103 * 0.002 + 0.0005)
    # sense-first then waits for the next boundary to read the observation that ends the last transition
    assert clock.time_ns == (104 * PERIOD_NS if ordering == "sense-first" else 103 * PERIOD_NS + 500_000)
    latency = report.latency
    assert latency["apply"].median_us == pytest.approx(500) and latency["apply"].max_us == pytest.approx(5000)
    assert latency["work"].max_us == pytest.approx(5000)
    assert latency["lateness"].max_us == 0 and latency["act"].max_us == 0  # the fake clock: exact wake-ups
    assert latency["period error"].max_us == 0
    assert report.num_timesteps == 100 and report.learning and report.stopped_by is None
    assert len(report.episodes) == 100 // 3 and all(length == 3 for _, length in report.episodes)
    assert "deadline misses: 2 (2.000%), skipped periods: 4" in report.format()


def test_duration_runs_one_tick_per_period_and_never_bursts_to_catch_up() -> None:
    agent, control = make()
    clock = FakeClock()
    report = loop_for(agent, control, clock, timed_apply(control, clock, 0.0005)).run(duration_s=1.0)
    assert (report.ticks, report.misses, report.skipped_periods) == (500, 0, 0)
    agent, control = make()
    clock = FakeClock()
    apply = timed_apply(control, clock, 0.0005, {10: 0.005})
    report = loop_for(agent, control, clock, apply).run(duration_s=1.0)
    assert (report.ticks, report.misses, report.skipped_periods) == (498, 1, 2)


def test_the_loop_learns_exactly_what_agent_learn_does() -> None:
    """Both orderings make the agent's calls in agent.learn's order, on the same env stream."""
    reference = Reflect(DelayedMatchEnv(delay=2), SMALL, seed=4).learn(150)
    for ordering in ("act-first", "sense-first"):
        agent, control = make(seed=4)
        clock = FakeClock()
        report = loop_for(agent, control, clock, timed_apply(control, clock, 0.0001), ordering=ordering).run(
            steps=150
        )
        assert report.num_timesteps == 150 == agent.num_timesteps
        assert_same(weights(agent), weights(reference))
        returns = [r for r, _ in reference.ep_info_buffer]
        assert [r for r, _ in report.episodes] == returns[-len(report.episodes):]


def test_learning_changes_the_weights_and_frozen_does_not() -> None:
    agent, control = make(seed=1)
    before = weights(agent)
    clock = FakeClock()
    loop_for(agent, control, clock, timed_apply(control, clock, 0.0001)).run(steps=60)
    learned = weights(agent)
    assert any(not torch.equal(before[k], learned[k]) for k in before)
    assert agent.num_timesteps == 60 and agent.learning

    assert agent.obs_normalizer is not None
    statistics = agent.obs_normalizer.state_dict()["rms"]
    report = loop_for(agent, control, clock, timed_apply(control, clock, 0.0001), learn=False).run(steps=60)
    assert_same(weights(agent), learned)
    assert agent.num_timesteps == 60 and not agent.learning and not report.learning
    after = agent.obs_normalizer.state_dict()["rms"]
    assert after["count"] == statistics["count"] and torch.equal(after["mean"], statistics["mean"])
    assert len(report.episodes) == 20  # episodes still end and are counted when frozen

    frozen = ControlLoop(agent, control.read_observation, control.apply_action, learn=False, rate_hz=500,
                         clock=FakeClock())  # frozen needs no reward_fn (no episode returns then)
    assert frozen.run(steps=10).episodes == []


def test_periodic_checkpoints_by_steps_and_a_final_one(tmp_path: Path) -> None:
    agent, control = make()
    clock = FakeClock()
    loop = loop_for(agent, control, clock, timed_apply(control, clock, 0.0001),
                    checkpoint_path=tmp_path / "agent", checkpoint_every_steps=25)
    report = loop.run(steps=60)
    assert report.checkpoints_written == 2 and report.checkpoint_error is None
    assert report.checkpoint == tmp_path / "agent.pt"
    assert load_checkpoint(tmp_path / "agent.pt")["num_timesteps"] == 60
    frozen = loop_for(agent, control, clock, timed_apply(control, clock, 0.0001), learn=False,
                      checkpoint_path=tmp_path / "frozen.pt")
    assert frozen.run(steps=5).checkpoint is None and not (tmp_path / "frozen.pt").exists()


def test_a_periodic_checkpoint_holds_the_state_of_the_tick_it_was_captured_at(tmp_path: Path) -> None:
    agent, control = make()
    clock = FakeClock()
    loop_for(agent, control, clock, timed_apply(control, clock, 0.0001)).run(steps=25)
    captured = weights(agent)
    schedule = CheckpointSchedule(tmp_path / "periodic.pt", every_ticks=1)
    schedule.start(0, 0)
    assert schedule.due(0, 1)
    schedule.capture(agent, 0, 1)
    loop_for(agent, control, clock, timed_apply(control, clock, 0.0001)).run(steps=25)  # learns meanwhile
    schedule.finish()
    saved = Reflect.from_checkpoint(load_checkpoint(tmp_path / "periodic.pt"), DelayedMatchEnv())
    assert saved.num_timesteps == 25 and schedule.written == 1
    assert_same(weights(saved), captured)


def test_periodic_checkpoints_by_loop_time(tmp_path: Path) -> None:
    agent, control = make()
    clock = FakeClock()
    loop = loop_for(agent, control, clock, timed_apply(control, clock, 0.0001),
                    checkpoint_path=tmp_path / "timed.pt", checkpoint_every_s=0.05)
    report = loop.run(steps=100)  # 0.2 s of loop time
    assert 1 <= report.checkpoints_written <= 3


def test_on_tick_can_stop_the_loop_and_change_the_world() -> None:
    agent, control = make()
    clock = FakeClock()
    seen: list[int] = []

    def on_tick(loop: ControlLoop) -> None:
        seen.append(loop.tick)
        if loop.tick == 7:
            loop.stop()

    report = loop_for(agent, control, clock, timed_apply(control, clock, 0.0001), on_tick=on_tick).run()
    assert seen == list(range(1, 8)) and report.ticks == 7 and report.stopped_by == "stop()"


def test_observations_are_copied_so_an_in_place_sensor_buffer_is_fine() -> None:
    agent, control = make()
    sensor = np.zeros(3)
    pairs: list[tuple[float, float]] = []

    def read() -> np.ndarray:
        sensor[...] = control.read_observation()
        return sensor  # the same array every time

    def reward(obs: np.ndarray, action: Any, next_obs: np.ndarray) -> Any:
        pairs.append((float(obs[2]), float(next_obs[2])))
        return control.reward_fn(obs, action, next_obs)

    ControlLoop(agent, read, control.apply_action, reward, reset_fn=control.reset, rate_hz=500,
                clock=FakeClock()).run(steps=6)
    # DelayedMatchEnv shows [cue, cue, 0] then [0, 0, 1] twice: obs and next_obs must differ at step 0
    assert pairs[0] == (0.0, 1.0) and pairs[1] == (1.0, 1.0)


def test_the_loop_runs_in_a_thread_without_touching_signal_handlers() -> None:
    agent, control = make()
    loop = ControlLoop(agent, control.read_observation, control.apply_action, control.reward_fn,
                       reset_fn=control.reset, rate_hz=500, clock=FakeClock())
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(loop.run(steps=20)))
    thread.start()
    thread.join(timeout=60)
    assert results and results[0].ticks == 20


def test_a_rate_too_high_for_the_work_misses_every_tick_and_says_so() -> None:
    agent, control = make()
    clock = FakeClock()
    report = loop_for(agent, control, clock, timed_apply(control, clock, 0.003)).run(steps=20)
    assert (report.ticks, report.misses, report.skipped_periods) == (20, 20, 20)  # 3 ms each: 2 periods
    assert report.miss_fraction == 1.0
    assert "hint: a median tick takes 3,000 µs, more than the period: lower the rate" in report.format()


def test_the_latency_ring_keeps_the_last_ticks_and_the_maxima_of_the_whole_run() -> None:
    from reflect.runtime.latency import LatencyRecorder

    recorder = LatencyRecorder(period_ns=1000, capacity=4)
    for k in range(10):  # act takes 10 µs, except 90 µs at tick 1 (overwritten long before the end)
        start = k * 1000
        recorder.record(start, start, 0, 90_000 if k == 1 else 10_000 + k, 0, 0, start + 500)
    assert recorder.count == 10 and recorder.window == 4
    stats = recorder.summary()
    assert stats["act"].median_us == pytest.approx(10.0075)  # ticks 6-9 only
    assert stats["act"].max_us == 90.0  # folded in when the ring wrapped
    assert stats["work"].max_us == 0.5 and stats["period error"].max_us == 0.0


def test_a_due_capture_waits_for_a_tick_with_time_to_spare_but_not_for_long(tmp_path: Path) -> None:
    schedule = CheckpointSchedule(tmp_path / "a.pt", every_ticks=10)
    schedule.start(0, 0)
    assert not schedule.due(0, 9, deadline_ns=2_000_000)  # not due yet
    assert schedule.due(0, 10, deadline_ns=2_000_000)  # no capture measured yet: any tick will do
    schedule.captured(1_500_000)  # the last capture took 1.5 ms
    assert not schedule.due(1_000_000, 10, deadline_ns=2_000_000)  # would overrun this tick: wait
    assert schedule.due(2_400_000, 11, deadline_ns=4_000_000)  # this one has the time
    assert not schedule.due(400_000_000, 12, deadline_ns=400_500_000)
    assert schedule.due(1_000_000_000, 13, deadline_ns=1_000_500_000)  # waited half a second: now anyway
    assert schedule.capture_max_ns == 1_500_000
