"""`reflect sweep` without Ray: the spec parser and its errors, search spaces, trial folders (resume from
the newest checkpoint, fault injection), the sweep loop with an in-process executor, and the report."""

from __future__ import annotations

import json
import math
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from reflect.cli import main
from reflect.config import ConfigError
from reflect.sweep.plan import Sweep, SweepError, create_sweep, open_sweep, run_sweep
from reflect.sweep.report import (
    RESULTS_FILE,
    Spread,
    collect_results,
    format_summary,
    quantile,
    summarize,
    write_report,
)
from reflect.sweep.search import Point, grid_points, parse_space, random_points
from reflect.sweep.spec import load_sweep_spec, parse_sweep_spec, resolve_config
from reflect.sweep.trial import Trial, build_trials, read_state, run_trial

TINY_FIXED = {
    "network.hidden": [16],
    "train.eval_every": 300,
    "train.eval_episodes": 2,
    "train.checkpoint_every": 600,
    "train.log_every": 300,
}


def spec_data(**changes: Any) -> dict[str, Any]:
    """A small valid spec (2 grid points x 1 env x 2 seeds, 1,200 steps each) with keys replaced."""
    data: dict[str, Any] = {
        "name": "tiny",
        "envs": ["CartPole-v1"],
        "seeds": 2,
        "total_steps": 1200,
        "fixed": dict(TINY_FIXED),
        "search": {"method": "grid", "space": {"learner.lam": [0.5, 0.9]}},
    }
    data.update(changes)
    return data


def parse(data: dict[str, Any]) -> tuple[Any, Any]:
    return parse_sweep_spec(data, source="spec.yaml")


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    message = str(caught.value)
    assert message.startswith("sweep spec 'spec.yaml': "), message
    return message


# ----------------------------------------------------------------------------------------------------
# the shipped spec and valid specs


def test_shipped_cartpole_spec_is_3_configs_by_5_seeds() -> None:
    spec, dimensions = load_sweep_spec("cartpole")
    points = grid_points(dimensions)
    trials = build_trials(spec, points)
    assert [point.label for point in points] == ["learner.lam=0.5", "learner.lam=0.8", "learner.lam=0.95"]
    assert len(trials) == 15 and spec.seeds == (0, 1, 2, 3, 4)
    assert trials[0].name == "p0__CartPole-v1__s0" and trials[-1].name == "p2__CartPole-v1__s4"
    assert {trial.config["learner"]["lam"] for trial in trials} == {0.5, 0.8, 0.95}
    assert all(trial.total_steps == 40_000 for trial in trials)
    assert all(trial.config["train"]["checkpoint_every"] == 10_000 for trial in trials)
    assert spec.resources.max_concurrent == 2 and spec.resources.cpus_per_trial == 1


def test_shipped_pendulum_spec_searches_a_continuous_task_for_the_share_solved() -> None:
    from reflect.sweep.search import optuna_distributions

    spec, dimensions = load_sweep_spec("pendulum")  # a Box action space passes the spec's env check
    assert spec.envs == ("Pendulum-v1",) and spec.seeds == tuple(range(10))
    assert spec.search.method == "optuna" and spec.search.metric == "solved_fraction" and spec.mode == "max"
    assert set(optuna_distributions(dimensions)) == {dim.key for dim in dimensions}
    config = resolve_config(spec, "Pendulum-v1", {dim.key: dim.candidates()[0] for dim in dimensions})
    assert config.train.reward_threshold == -250.0 and config.train.total_steps == 40_000


def test_seeds_count_or_list_and_nested_keys() -> None:
    spec, dimensions = parse(
        spec_data(seeds=[3, 7], fixed={"train": {"eval_every": 300, "eval_episodes": 2}},
                  search={"space": {"network": {"hidden": [[16], [32]]}}})
    )
    assert spec.seeds == (3, 7)
    assert spec.fixed == {"train.eval_every": 300, "train.eval_episodes": 2}
    assert [dim.key for dim in dimensions] == ["network.hidden"]
    trials = build_trials(spec, grid_points(dimensions))
    assert [trial.name for trial in trials] == [
        "p0__CartPole-v1__s3", "p0__CartPole-v1__s7", "p1__CartPole-v1__s3", "p1__CartPole-v1__s7",
    ]
    assert trials[2].config["network"]["hidden"] == [32]
    assert parse(spec_data(seeds=3))[0].seeds == (0, 1, 2)


def test_overrides_on_the_command_line(tmp_path: Path) -> None:
    file = tmp_path / "s.yaml"
    file.write_text(json.dumps(spec_data()))  # JSON is YAML
    spec, dimensions = load_sweep_spec(
        file, ["total_steps=900", "search.space.learner.lam=[0.7]", "resources.max_concurrent=3"]
    )
    assert spec.total_steps == 900 and spec.resources.max_concurrent == 3
    assert dimensions[0].values == (0.7,)
    assert spec.name == "tiny"


def test_random_points_are_reproducible_and_cross_grid_axes() -> None:
    dimensions = parse_space(
        {
            "learner.actor_lr": {"loguniform": [0.1, 3.0]},
            "learner.entropy_coef": {"uniform": [0.0, 0.05]},
            "train.eval_episodes": {"randint": [2, 4]},
            "network.hidden": [[16], [32]],
            "learner.lam": {"grid": [0.5, 0.9]},
        },
        "random",
    )
    points = random_points(dimensions, 5, seed=1)
    assert len(points) == 10  # 5 samples x 2 grid values
    assert points == random_points(dimensions, 5, seed=1)
    assert points != random_points(dimensions, 5, seed=2)
    assert [p.params["learner.lam"] for p in points[:4]] == [0.5, 0.9, 0.5, 0.9]
    for point in points:
        lr = point.params["learner.actor_lr"]
        assert 0.1 <= lr <= 3.0 and float(f"{lr:.4g}") == lr
        assert 0.0 <= point.params["learner.entropy_coef"] <= 0.05
        assert point.params["train.eval_episodes"] in (2, 3, 4)
        assert point.params["network.hidden"] in ([16], [32])


def test_optuna_points_round_trip() -> None:
    pytest.importorskip("optuna")
    from reflect.sweep.search import optuna_distributions, optuna_params, point_from_optuna

    dimensions = parse_space(
        {"network.hidden": [[16], [32]], "learner.actor_lr": {"loguniform": [0.1, 3.0]}}, "optuna"
    )
    distributions = optuna_distributions(dimensions)
    point = point_from_optuna(0, dimensions, {"network.hidden": 1, "learner.actor_lr": 0.123456789})
    assert point.params == {"network.hidden": [32], "learner.actor_lr": 0.1235}
    params = optuna_params(dimensions, point)
    assert params == {"network.hidden": 1, "learner.actor_lr": 0.1235}
    for key, value in params.items():
        assert distributions[key]._contains(distributions[key].to_internal_repr(value))


# ----------------------------------------------------------------------------------------------------
# bad keys and values


def sampled(space: dict[str, Any], method: str = "random") -> dict[str, Any]:
    return {"search": {"method": method, "space": space, "num_samples": 2}}


def grid(space: dict[str, Any], **search: Any) -> dict[str, Any]:
    return {"search": {"space": space, **search}}


LAM_RANGE = "config 'learner': lam must be in [0, 1], got 1.5"
BAD_SPECS = [
    ({"seed": 3}, "unknown key 'seed'; did you mean 'seeds'?"),
    ({"search": {"method": "grd"}}, "key 'search.method' must be one of 'grid', 'random', 'optuna'"),
    ({"search": {"mehtod": "grid"}}, "unknown key 'search.mehtod'; did you mean 'search.method'?"),
    ({"resources": {"max_concurrent": 0}}, "resources: max_concurrent must be >= 1, got 0"),
    ({"resources": {"max_concurrent": "two"}}, "key 'resources.max_concurrent' must be an int, got 'two'"),
    ({"resources": {"cpus_per_trial": 0}}, "resources: cpus_per_trial must be > 0"),
    ({"resources": {"max_failures": -1}}, "resources: max_failures must be >= 0"),
    ({"total_steps": 0}, "total_steps must be >= 1, got 0"),
    ({"seeds": 0}, "key 'seeds' must be a count >= 1 or a list of seeds, got 0"),
    ({"seeds": "all"}, "key 'seeds' must be a count (5 means seeds 0-4) or a list of seeds, got 'all'"),
    ({"seeds": [1, 1]}, "seeds lists 1 twice"),
    ({"seeds": [-1]}, "seeds must be >= 0"),
    ({"envs": []}, "envs must list at least one env id"),
    ({"envs": ["CartPol-v1"]}, "envs: unknown environment 'CartPol-v1': did you mean 'CartPole-v1'"),
    ({"fixed": {"learner.gama": 0.9}}, "unknown config key 'learner.gama'; did you mean 'learner.gamma'?"),
    ({"fixed": {**TINY_FIXED, "learner.gamma": 1.5}}, "config 'learner': gamma must be in [0, 1], got 1.5"),
    ({"fixed": {**TINY_FIXED, "learner.lam": 0.3}}, "'learner.lam' is both fixed and searched"),
    ({"fixed": {**TINY_FIXED, "train.total_steps": 5}}, "'train.total_steps' is set both by 'total_steps'"),
    (grid({"learner.lamda": [0.5]}), "unknown config key 'learner.lamda'; did you mean 'learner.lam'?"),
    (grid({"learner.lam": [0.5, 1.5]}), f"search.space 'learner.lam' value 1.5 on CartPole-v1: {LAM_RANGE}"),
    (grid({"network.neuron": ["lif", "izhikevich"]}),
     "search.space 'network.neuron' value izhikevich on CartPole-v1: config 'network': unknown neuron model "
     "'izhikevich': choose one of alif, cuba, lif"),
    (grid({"learner.lam": 0.5}), "search.space 'learner.lam' must be a list of values or a distribution"),
    (grid({"learner.lam": []}), "search.space 'learner.lam': the list of values is empty"),
    (grid({"learner.lam": [0.5, 0.5]}), "the value 0.5 is listed twice"),
    (grid({"learner.lam": {"unifrom": [0, 1]}}), "unknown distribution 'unifrom'; did you mean 'uniform'?"),
    (grid({"learner.lam": {"uniform": [0.1, 0.9]}}),
     "method 'grid' needs a list of values, got a uniform distribution"),
    (sampled({"learner.lam": {"uniform": [0.9, 0.1]}}), "uniform needs low < high, got [0.9, 0.1]"),
    (sampled({"learner.actor_lr": {"loguniform": [0, 1]}}), "loguniform needs low > 0"),
    (sampled({"train.eval_episodes": {"randint": [1.5, 3]}}), "randint needs integer bounds"),
    (sampled({"learner.lam": {"uniform": [0.1]}}), "uniform needs [low, high]"),
    (sampled({"learner.lam": {"uniform": [0.5, 1.5]}}), "search.space 'learner.lam' value 1.5 on CartPole"),
    ({"search": {"method": "random", "space": {"learner.lam": [0.5]}}}, "'random' needs num_samples >= 1"),
    (grid({"learner.lam": [0.5]}, num_samples=3), "num_samples applies to methods 'random' and 'optuna'"),
    (sampled({"learner.lam": {"grid": [0.5, 0.9]}}, "optuna"), "method 'optuna' has no grid axes"),
    (grid({"learner.lam": [0.5]}, batch_size=2), "batch_size applies to method 'optuna'"),
    (grid({"learner.lam": [0.5]}, metric="reward"), "key 'search.metric' must be one of"),
    ({"debug": {"fail_once_at_step": 5000}}, "fail_once_at_step (5000) must be below the budget of 1200"),
    ({"debug": {"fail_once_at_step": 600, "fail_trials": [4]}},
     "debug.fail_trials lists trial 4, but the sweep has trials 0-3"),
    ({"debug": {"fail_once_at_step": 600}, "fixed": {**TINY_FIXED, "train.checkpoint_every": 0}},
     "debug.fail_once_at_step needs checkpoints"),
    ({"config": "missing.yaml"}, "config file"),
]


@pytest.mark.parametrize(("changes", "expected"), BAD_SPECS)
def test_bad_keys_and_values_are_named(changes: dict[str, Any], expected: str) -> None:
    assert expected in error_of(spec_data(**changes))


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sweep spec 'nope' does not exist; .*shipped specs: cartpole"):
        load_sweep_spec("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("envs: [CartPole-v1\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_sweep_spec(bad)
    no_envs = tmp_path / "no_envs.yaml"
    no_envs.write_text("seeds: 2\n")
    with pytest.raises(ConfigError, match="missing required key 'envs'"):
        load_sweep_spec(no_envs)


def test_cli_dry_run_and_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["sweep", "cartpole", "--dry-run", "--set", "debug.fail_once_at_step=20000"]) == 0
    out = capsys.readouterr().out
    assert "3 config points x 1 env(s) x 5 seed(s) = 15 trials" in out
    assert "trial 0: p0__CartPole-v1__s0, 40,000 steps  (killed once after step 20000)" in out
    assert main(["sweep", "cartpole", "--dry-run", "--set", "search.space.learner.gama=[0.9]"]) == 2
    assert "did you mean 'learner.gamma'?" in capsys.readouterr().err
    assert main(["sweep"]) == 2
    assert "give exactly one of SPEC, --resume SWEEP_DIR and --report SWEEP_DIR" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(tmp_path)]) == 2
    assert "is not a sweep folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# trials: resume from the newest checkpoint, fault injection


def tiny_trial(**changes: Any) -> Trial:
    spec, dimensions = parse(spec_data(seeds=[0], **changes))
    return build_trials(spec, grid_points(dimensions))[0]


def test_a_killed_trial_resumes_from_its_newest_checkpoint(tmp_path: Path) -> None:
    trial = tiny_trial()
    run_dir = tmp_path / trial.name
    reports: list[dict[str, Any]] = []
    summary = run_trial(trial, run_dir, reports.append, poll_seconds=0.05)
    assert summary["total_steps"] == 1200
    assert [r["step"] for r in reports if "step" in r] == [300, 600, 900, 1200]
    assert reports[-1]["finished"] is True and reports[-1]["attempts"] == 1
    reference = torch.load(run_dir / "final_model.pt", weights_only=True)

    # what a kill between the checkpoints at 600 and 1200 leaves: rows past 600, no summary, no final model
    for name in ("summary.json", "final_model.pt", "checkpoints/step_1200.pt"):
        (run_dir / name).unlink()
    with (run_dir / "evaluations.csv").open("a") as file:
        file.write("1500,1.0,0.0")  # a half-written row
    reports.clear()
    run_trial(trial, run_dir, reports.append, poll_seconds=0.05)
    steps = [line.split(",")[0] for line in (run_dir / "evaluations.csv").read_text().splitlines()[1:]]
    assert steps == ["300", "600", "900", "1200"]  # no row twice, the torn row gone
    assert [r["step"] for r in reports if "step" in r] == [900, 1200]
    state = read_state(run_dir)
    assert [a["resumed_from_step"] for a in state["attempts"]] == [None, 600]
    assert reports[-1]["resumed_from_step"] == 600 and reports[-1]["attempts"] == 2
    resumed = torch.load(run_dir / "final_model.pt", weights_only=True)
    assert _count_equal_tensors(reference, resumed) > 10  # the same weights, traces, statistics as before

    # a finished trial is not run again
    reports.clear()
    run_trial(trial, run_dir, reports.append)
    assert len(reports) == 1 and reports[0]["finished"] is True
    assert len(read_state(run_dir)["attempts"]) == 2


def _count_equal_tensors(a: Any, b: Any, path: str = "") -> int:
    """Assert that every tensor in two checkpoint payloads is equal; return how many there are."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
        return 1
    if isinstance(a, dict):
        return sum(_count_equal_tensors(a[key], b[key], f"{path}.{key}") for key in a)
    if isinstance(a, list | tuple):
        pairs = enumerate(zip(a, b, strict=True))
        return sum(_count_equal_tensors(x, y, f"{path}[{i}]") for i, (x, y) in pairs)
    return 0


class Killed(Exception):
    pass


def test_fault_injection_fires_once_after_the_checkpoint(tmp_path: Path) -> None:
    trial = tiny_trial(debug={"fail_once_at_step": 600})
    assert trial.fail_once_at_step == 600
    run_dir = tmp_path / trial.name
    kills: list[int] = []

    def kill(code: int) -> None:
        kills.append(code)
        raise Killed

    with pytest.raises(Killed):
        run_trial(trial, run_dir, lambda metrics: None, kill=kill, poll_seconds=0.02)
    for thread in threading.enumerate():  # the training thread of the "killed" attempt runs on
        if thread.name == f"train-{trial.name}":
            thread.join()
    state = read_state(run_dir)
    assert kills == [1] and state["fault_injected_at_step"] in (600, 1200)
    run_trial(trial, run_dir, lambda metrics: None, kill=kill)
    assert kills == [1]


# ----------------------------------------------------------------------------------------------------
# the sweep loop (in-process executor), resume bookkeeping, the report


def in_process(sweep: Sweep, ran: list[str]) -> Any:
    def execute(trials: list[Trial]) -> None:
        for trial in trials:
            ran.append(trial.name)
            run_trial(trial, sweep.run_dir(trial), lambda metrics: None, poll_seconds=0.05)

    return execute


def test_sweep_folder_resume_and_report(tmp_path: Path) -> None:
    spec, dimensions = parse(spec_data(seeds=[0], total_steps=600))
    sweep = create_sweep(spec, dimensions, root=tmp_path, explicit=tmp_path / "sweep")
    with pytest.raises(SweepError, match="already holds files; continue that sweep with 'reflect sweep"):
        create_sweep(spec, dimensions, root=tmp_path, explicit=tmp_path / "sweep")
    ran: list[str] = []
    run_sweep(sweep, in_process(sweep, ran), log=lambda message: None)
    assert ran == ["p0__CartPole-v1__s0", "p1__CartPole-v1__s0"]

    text, files = write_report(sweep)
    assert {path.name for path in files} == {"results.csv", "summary.txt", "learning_curves.png"}
    assert "p0  learner.lam=0.5" in text and "p1  learner.lam=0.9" in text
    header = (sweep.directory / RESULTS_FILE).read_text().splitlines()[0].split(",")
    for column in ("trial", "point", "env", "seed", "learner.lam", "status", "solved_at_step",
                   "stable_from_step", "final_eval_mean_return", "steps_per_second", "attempts"):
        assert column in header

    # --resume: only the unfinished trial runs again
    shutil.rmtree(sweep.run_dir(sweep.trials[1]))
    reopened = open_sweep(sweep.directory, overrides=["resources.max_concurrent=1"])
    assert reopened.spec.resources.max_concurrent == 1 and reopened.points == sweep.points
    ran.clear()
    messages: list[str] = []
    run_sweep(reopened, in_process(reopened, ran), log=messages.append)
    assert ran == ["p1__CartPole-v1__s0"] and messages == ["1 trial already finished: skipped"]
    ran.clear()
    run_sweep(reopened, in_process(reopened, ran), log=messages.append)
    assert ran == []
    with pytest.raises(SweepError, match="only resources"):
        open_sweep(sweep.directory, overrides=["total_steps=5"])
    rows = collect_results(reopened)
    assert [row["status"] for row in rows] == ["finished", "finished"]


def test_quantiles_with_never_solved() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.25) == 2.0
    assert quantile([1.0, 2.0], 0.5) == 1.5
    assert quantile([1.0, math.inf, math.inf], 0.5) == math.inf
    assert quantile([1.0, 2.0, math.inf], 0.75) == math.inf
    assert quantile([1.0, 2.0, math.inf], 0.5) == 2.0
    assert math.isnan(quantile([], 0.5))


def test_summary_table_medians_and_iqr(tmp_path: Path) -> None:
    spec, dimensions = parse(spec_data(seeds=5))
    sweep = Sweep(tmp_path, spec, dimensions, [Point(0, {"learner.lam": 0.5})])
    solved = [10_000, 20_000, None, 5_000, 15_000]
    rows = [
        {"point": "p0", "env": "CartPole-v1", "status": "finished", "solved_at_step": s,
         "stable_from_step": None, "final_eval_mean_return": 400.0 + 10 * i, "steps_per_second": 2000.0 + i}
        for i, s in enumerate(solved)
    ]
    (summary,) = summarize(sweep, rows)
    assert summary.solved == 4 and summary.finished == 5
    assert summary.solved_at == Spread(15_000, 10_000, 20_000)
    assert summary.final_return == Spread(420.0, 410.0, 430.0)
    text = format_summary([summary])
    assert "4/5" in text and "15,000 (10,000-20,000)" in text and "420.0 (410.0-430.0)" in text
    assert "never (never-never)" in text  # stable_from: no seed stayed solved


def test_optuna_asks_points_round_by_round(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    space = {"learner.lam": {"uniform": [0.3, 0.9]}, "network.surrogate": ["fast_sigmoid", "arctan"]}
    spec, dimensions = parse(spec_data(seeds=[0], total_steps=300, search={
        "method": "optuna", "space": space, "num_samples": 3, "batch_size": 2, "seed": 0,
    }))
    sweep = create_sweep(spec, dimensions, root=tmp_path, explicit=tmp_path / "sweep")
    assert sweep.points == []
    ran: list[str] = []
    run_sweep(sweep, in_process(sweep, ran), log=lambda message: None)
    assert ran == ["p0__CartPole-v1__s0", "p1__CartPole-v1__s0", "p2__CartPole-v1__s0"]  # rounds of 2, 1
    assert len(open_sweep(sweep.directory).points) == 3
    for point in sweep.points:
        assert 0.3 <= point.params["learner.lam"] <= 0.9
        assert point.params["network.surrogate"] in ("fast_sigmoid", "arctan")
    assert len({json.dumps(point.params, sort_keys=True) for point in sweep.points}) == 3


@pytest.mark.parametrize(("metric", "expected"), [
    ("stable_from_step", 2_400),  # stable from 1,000, never, never: median of 1,000, 2,400, 2,400
    ("solved_at_step", 1_000),    # 1,000, 600, never (2,400)
    ("final_eval_mean_return", 480.0),
    ("solved_fraction", 2 / 3),   # two of the three seeds solved
])
def test_point_objective_counts_a_trial_that_never_got_there_as_twice_the_budget(
    tmp_path: Path, metric: str, expected: float
) -> None:
    from reflect.sweep.plan import point_objective

    data = spec_data(seeds=[0, 1, 2])
    data["search"] = {"method": "grid", "space": {"learner.lam": [0.8]}, "metric": metric}
    spec, dimensions = parse(data)
    sweep = create_sweep(spec, dimensions, root=tmp_path, explicit=tmp_path / "sweep")
    summaries = [  # per seed: solved at, stable from, final return
        (1_000, 1_000, 500.0), (600, None, 470.0), (None, None, 480.0)]
    for trial, (solved, stable, final) in zip(sweep.trials, summaries, strict=True):
        run_dir = sweep.run_dir(trial)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "final_model.pt").write_bytes(b"")
        (run_dir / "summary.json").write_text(json.dumps({
            "total_steps": 1200, "solved_at_step": solved, "stable_from_step": stable,
            "final_eval_mean_return": final}))
    assert point_objective(sweep, grid_points(dimensions)[0]) == expected
