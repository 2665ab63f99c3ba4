"""Run folders, atomic writes, checkpoint files, evaluation summaries and CSV logs."""

from __future__ import annotations

import math
import pickle
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reflect.atomic_files import write_text_atomic
from reflect.checkpoints import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from reflect.runs.run_dir import RunDirError, create_run_dir, run_name
from reflect.runs.summary import (
    EvaluationRecord,
    append_episode_csv,
    append_evaluation_csv,
    read_episodes_csv,
    read_evaluations_csv,
    solved_at_step,
    stable_from_step,
    write_evaluations_csv,
)

NOW = datetime(2024, 5, 6, 7, 8, 9)

# ----------------------------------------------------------------------------------------------------
# run folders


def test_run_name_replaces_unsafe_characters() -> None:
    expected = "CartPole-v1__reflect__3__20240506-070809"
    assert run_name("CartPole-v1", "reflect", 3, "20240506-070809") == expected
    assert run_name("ALE/Pong-v5", "reflect", 0, "t") == "ALE_Pong-v5__reflect__0__t"
    assert run_name("my env:v0", "a", 1, "t") == "my_env_v0__a__1__t"


def test_create_run_dir_names_and_collisions(tmp_path: Path) -> None:
    first = create_run_dir(tmp_path / "runs", "ALE/Pong-v5", "reflect", 1, now=NOW)
    assert first == tmp_path / "runs" / "ALE_Pong-v5__reflect__1__20240506-070809"
    assert (first / "checkpoints").is_dir()
    (first / "config.yaml").write_text("x: 1\n")
    second = create_run_dir(tmp_path / "runs", "ALE/Pong-v5", "reflect", 1, now=NOW)
    third = create_run_dir(tmp_path / "runs", "ALE/Pong-v5", "reflect", 1, now=NOW)
    assert second.name == first.name + "-1" and third.name == first.name + "-2"
    assert (second / "checkpoints").is_dir() and (third / "checkpoints").is_dir()
    assert (first / "config.yaml").read_text() == "x: 1\n"


def test_explicit_dir_new_or_empty(tmp_path: Path) -> None:
    new = create_run_dir(tmp_path, "CartPole-v1", "a", 0, explicit=tmp_path / "mine" / "run")
    assert new == tmp_path / "mine" / "run" and (new / "checkpoints").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert create_run_dir(tmp_path, "CartPole-v1", "a", 0, explicit=empty) == empty


def test_explicit_dir_with_files_is_refused(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "evaluations.csv").write_text("keep me")
    with pytest.raises(RunDirError) as info:
        create_run_dir(tmp_path, "CartPole-v1", "a", 0, explicit=used)
    message = str(info.value)
    assert str(used) in message and "already holds files" in message and "remove it" in message
    assert (used / "evaluations.csv").read_text() == "keep me"
    assert not (used / "checkpoints").exists()


def test_unwritable_location(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(RunDirError, match=r"cannot create run directory '.*a-file.*': "):
        create_run_dir(blocker / "runs", "CartPole-v1", "a", 0, now=NOW)
    with pytest.raises(RunDirError, match="a-file"):
        create_run_dir(tmp_path, "CartPole-v1", "a", 0, explicit=blocker)


def test_write_text_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    write_text_atomic(path, "old\n")
    write_text_atomic(path, "new ü\n")
    assert path.read_text(encoding="utf-8") == "new ü\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


# ----------------------------------------------------------------------------------------------------
# checkpoints


def _payload() -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(3, 2)
    # shaped like an optimizer state dict (int keys, nested tensors), without importing an optimizer
    optimizer = {
        "state": {0: {"step": torch.tensor(1.0), "exp_avg": torch.randn(2, 3, generator=generator)}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1]}],
    }
    return {
        "model": model.state_dict(),
        "optimizer": optimizer,
        "step": 1234,
        "returns": [1.5, -2.0],
        "shape": (3, 2),
        "config": {"learner": {"gamma": 0.99, "mode": "online", "limit": None, "flag": True}},
    }


def test_checkpoint_round_trip_weights_only(tmp_path: Path) -> None:
    payload = _payload()
    path = tmp_path / "deep" / "ckpt.pt"
    save_checkpoint(payload, path)
    assert "format" not in payload  # the caller's dict is left alone
    loaded = load_checkpoint(path)
    assert loaded["format"] == CHECKPOINT_FORMAT
    assert loaded["step"] == 1234 and loaded["returns"] == [1.5, -2.0] and loaded["shape"] == (3, 2)
    assert loaded["config"] == payload["config"]
    for name, tensor in payload["model"].items():
        assert torch.equal(loaded["model"][name], tensor)
    exp_avg = payload["optimizer"]["state"][0]["exp_avg"]
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], exp_avg)
    direct = torch.load(path, map_location="cpu", weights_only=True)
    assert direct["step"] == 1234
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(_payload(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert f"checkpoint '{path}' is corrupt or not a reflect checkpoint: " in str(info.value)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="the file ends early"):
        load_checkpoint(path)


def test_garbage_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello, not a checkpoint\n")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    reason = "it is not a file written by torch.save"
    assert str(info.value) == f"checkpoint '{path}' is corrupt or not a reflect checkpoint: {reason}"


def test_pickle_of_arbitrary_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "when": datetime(2024, 1, 1)}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).endswith("evil.pt' is corrupt or not a reflect checkpoint: "
                                    "it holds objects other than tensors and plain values")
    path.write_bytes(pickle.dumps({"format": CHECKPOINT_FORMAT}, protocol=2))
    with pytest.raises(CheckpointError, match=r"evil\.pt' is corrupt"):
        load_checkpoint(path)


@pytest.mark.parametrize("payload", [{"step": 1}, {"format": "other"}, [1, 2], torch.zeros(2)])
def test_wrong_format(tmp_path: Path, payload: Any) -> None:
    path = tmp_path / "other.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"other\.pt' is not a reflect checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "x.pt")
    assert str(info.value) == f"checkpoint '{tmp_path / 'x.pt'}' does not exist"
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({"step": np.int64(3)}, "'step'"),
        ({"stats": {"mean": np.float64(1.0)}}, "'stats.mean'"),
        ({"history": [1, 2, {"when": datetime(2024, 1, 1)}]}, "'history[2].when'"),
        ({"model": torch.nn.Linear(2, 2)}, "'model'"),
        ({"shape": torch.Size([2, 3])}, "'shape'"),
        ({"names": {"a", "b"}}, "'names'"),
    ],
)
def test_non_plain_value_rejected_with_its_key(tmp_path: Path, payload: dict, key: str) -> None:
    path = tmp_path / "ckpt.pt"
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(payload, path)
    assert f"checkpoint value at {key} is a " in str(info.value)
    assert not path.exists()


def test_bad_payloads_rejected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="must be a dict"):
        save_checkpoint([1], tmp_path / "a.pt")  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="format='v2'"):
        save_checkpoint({"format": "v2"}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"key \(1, 2\)"):
        save_checkpoint({"table": {(1, 2): 3}}, tmp_path / "a.pt")
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(CheckpointError, match=r"'loop\.self' contains itself"):
        save_checkpoint({"loop": loop}, tmp_path / "a.pt")
    assert list(tmp_path.iterdir()) == []


def test_shared_values_are_fine(tmp_path: Path) -> None:
    shared = [1, 2]
    save_checkpoint({"a": shared, "b": shared, "c": OrderedDict(x=shared)}, tmp_path / "a.pt")
    assert load_checkpoint(tmp_path / "a.pt")["c"] == {"x": [1, 2]}


def test_failed_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"step": 1, "w": torch.arange(4.0)}, path)
    before = path.read_bytes()

    def broken_save(obj: Any, file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(b"PK\x03\x04 partial checkpoint bytes")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"step": 2, "w": torch.zeros(4)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert load_checkpoint(path)["step"] == 1


# ----------------------------------------------------------------------------------------------------
# summaries


def _records(returns: list[float]) -> list[EvaluationRecord]:
    return [EvaluationRecord(1000 * (i + 1), r, 1.0, 100.0) for i, r in enumerate(returns)]


def test_solved_and_stable_with_a_dip() -> None:
    records = _records([10, 200, 480, 500, 300, 490, 495, 500])
    assert solved_at_step(records, 475) == 3000
    assert stable_from_step(records, 475) == 6000


def test_solved_and_stable_edge_cases() -> None:
    assert solved_at_step([], 1.0) is None and stable_from_step([], 1.0) is None
    below_at_end = _records([500, 500, 10])
    assert solved_at_step(below_at_end, 475) == 1000
    assert stable_from_step(below_at_end, 475) is None
    always = _records([475, 476])
    assert solved_at_step(always, 475) == 1000 and stable_from_step(always, 475) == 1000
    assert solved_at_step(_records([1, 2]), 475) is None
    shuffled = list(reversed(_records([10, 500, 500])))
    assert stable_from_step(shuffled, 475) == 2000
    assert stable_from_step(_records([500, math.nan, 500]), 475) == 3000


def test_evaluations_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "evaluations.csv"
    numpy_step: Any = np.int64(500)
    records = [EvaluationRecord(0, 0.1 + 0.2, 1 / 3, 17.0), EvaluationRecord(numpy_step, -1e-300, 0.0, 1.5)]
    write_evaluations_csv(path, records)
    assert path.read_text().splitlines()[0] == "step,mean_return,std_return,mean_length"
    assert read_evaluations_csv(path) == records
    assert all(isinstance(r.step, int) for r in read_evaluations_csv(path))


def test_append_evaluation_writes_header_once(tmp_path: Path) -> None:
    path = tmp_path / "evaluations.csv"
    append_evaluation_csv(path, EvaluationRecord(10, 1.0, 0.5, 9.0))
    append_evaluation_csv(path, EvaluationRecord(20, 2.0, 0.25, 10.0))
    lines = path.read_text().splitlines()
    assert lines == ["step,mean_return,std_return,mean_length", "10,1.0,0.5,9.0", "20,2.0,0.25,10.0"]
    expected = [EvaluationRecord(10, 1.0, 0.5, 9.0), EvaluationRecord(20, 2.0, 0.25, 10.0)]
    assert read_evaluations_csv(path) == expected


def test_episodes_csv(tmp_path: Path) -> None:
    path = tmp_path / "episodes.csv"
    path.touch()
    assert read_episodes_csv(path) == []
    append_episode_csv(path, 12, 12.0, 12)
    numpy_step: Any = np.int64(40)
    numpy_return: Any = np.float32(27.5)
    append_episode_csv(path, numpy_step, numpy_return, 28)
    assert path.read_text() == "step,return,length\n12,12.0,12\n40,27.5,28\n"
    episodes = read_episodes_csv(path)
    assert episodes == [(12, 12.0, 12), (40, 27.5, 28)]
    assert [type(v) for v in episodes[1]] == [int, float, int]
    with pytest.raises(TypeError):
        append_episode_csv(path, 1.5, 1.0, 2)  # type: ignore[arg-type]


def test_csv_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "episodes.csv"
    path.write_text("step,return,length\n1,2.0,3\n4,oops,5\n")
    with pytest.raises(ValueError, match=r"episodes\.csv' line 3: "):
        read_episodes_csv(path)
    with pytest.raises(ValueError) as info:
        read_evaluations_csv(path)
    assert "does not start with the header 'step,mean_return,std_return,mean_length'" in str(info.value)
