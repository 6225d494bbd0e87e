"""The run folder and the atomic writers every task uses (robo/run_dir.py, robo/files.py)."""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass, field

import pytest

from robo import files
from robo.run_dir import RunDir, undo_failed_start


@dataclass
class Inner:
    lr: float = 3e-4
    hidden: tuple[int, ...] = (64, 64)


@dataclass
class Cfg:
    steps: int = 100
    threads: int = 1
    inner: Inner = field(default_factory=Inner)


def test_new_run_writes_config_and_info_and_refuses_a_full_folder(tmp_path):
    run = RunDir.open(tmp_path / "run", Cfg(), kind="demo", resume=False)
    assert (run / "config.yaml").read_text().startswith("steps: 100")
    assert json.loads((run / "run.json").read_text())["kind"] == "demo"
    with pytest.raises(OSError, match="not empty; pass --resume"):
        RunDir.open(tmp_path / "run", Cfg(), kind="demo", resume=False)


def test_resume_refuses_a_changed_config_naming_the_keys_and_keeps_config_yaml(tmp_path):
    RunDir.open(tmp_path, Cfg(), kind="demo", resume=False)
    before = (tmp_path / "config.yaml").read_bytes()
    changed = Cfg(steps=200, inner=Inner(hidden=(32,)))
    expected = r"differs .* in inner\.hidden \(\[64, 64\] -> \[32\]\), steps \(100 -> 200\);"
    with pytest.raises(ValueError, match=expected):
        RunDir.open(tmp_path, changed, kind="demo", resume=True)
    assert (tmp_path / "config.yaml").read_bytes() == before
    # Execution-only keys may change; the stored config then records the new value.
    RunDir.open(tmp_path, Cfg(threads=2), kind="demo", resume=True, may_change=("threads",))
    assert "threads: 2" in (tmp_path / "config.yaml").read_text()


def test_resume_needs_a_run_of_the_same_kind(tmp_path):
    with pytest.raises(OSError, match="holds no demo run"):
        RunDir.open(tmp_path, Cfg(), kind="demo", resume=True)
    RunDir.open(tmp_path, Cfg(), kind="other", resume=False)
    with pytest.raises(OSError, match="holds a other run, not a demo run"):
        RunDir.open(tmp_path, Cfg(), kind="demo", resume=True)


def test_resume_removes_what_a_killed_process_left(tmp_path):
    RunDir.open(tmp_path, Cfg(), kind="demo", resume=False)
    stale = tmp_path / "sub" / ".checkpoint.pt.1234.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    RunDir.open(tmp_path, Cfg(), kind="demo", resume=True)
    assert not stale.exists()


def test_json_is_strict_nan_becomes_null(tmp_path):
    import numpy as np

    path = files.write_json(tmp_path / "m.json", {"a": float("nan"), "b": [np.float32(np.inf), 1.5],
                                                  "c": np.array([np.nan, 2.0])})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": [None, 2.0]}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = files.write_text(tmp_path / "out.txt", "good")

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        files.atomic_write(path, fail)
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_full_disk_is_one_line_naming_the_file(tmp_path):
    import torch

    def full(f):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    target = tmp_path / "checkpoint.pt"
    with pytest.raises(OSError, match=f"disk full: no space left on the device to write {target}") as info:
        files.atomic_write(target, full)
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
    files.save_torch({"x": torch.ones(2)}, target)
    assert torch.load(target)["x"].sum() == 2


def _start_and_fail(path, resume=False, save=None):
    with pytest.raises(RuntimeError, match="late"), undo_failed_start(path, resume):
        RunDir.open(path, Cfg(), kind="demo", resume=resume)
        if save:
            (path / save).write_bytes(b"work")
        raise RuntimeError("late")


def test_a_new_run_that_fails_before_saving_work_leaves_its_folder_as_it_was(tmp_path):
    _start_and_fail(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()  # the same --out can be used again
    (tmp_path / "empty").mkdir()
    _start_and_fail(tmp_path / "empty")
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_a_failed_run_keeps_saved_work_and_a_resumed_run_keeps_everything(tmp_path):
    _start_and_fail(tmp_path / "saved", save="checkpoint.pt")
    assert (tmp_path / "saved" / "checkpoint.pt").is_file() and (tmp_path / "saved" / "config.yaml").is_file()
    _start_and_fail(tmp_path / "logged", save="events.out.tfevents.1.host")  # its curves show what failed
    assert (tmp_path / "logged" / "config.yaml").is_file()
    RunDir.open(tmp_path / "resumed", Cfg(), kind="demo", resume=False)
    _start_and_fail(tmp_path / "resumed", resume=True)
    assert (tmp_path / "resumed" / "config.yaml").is_file()


def test_resume_of_a_folder_holding_another_kind_of_config_is_one_line(tmp_path):
    (tmp_path / "config.yaml").write_text("agents: 8\n")  # e.g. a committed policy folder, no run.json
    with pytest.raises(ValueError, match=r"^--resume: .* holds no demo run \(unknown config key 'agents'"):
        RunDir.open(tmp_path, Cfg(), kind="demo", resume=True)


def test_a_key_whose_default_changed_compares_by_what_a_run_without_it_used(tmp_path):
    import dataclasses

    from robo.tasks.online_cbf.config import FilterSettings, OnlineCbfConfig

    # a run begun before filter.shared_k2 existed: its config.yaml has no such key
    RunDir.open(tmp_path, OnlineCbfConfig(), kind="online_cbf", resume=False)
    text = (tmp_path / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(text.replace("  shared_k2: 4.0\n", ""))
    assert "shared_k2" not in (tmp_path / "config.yaml").read_text()
    with pytest.raises(ValueError, match=r"in filter\.shared_k2 \(None -> 4\.0\);"):
        RunDir.check_resumable(tmp_path, OnlineCbfConfig(), kind="online_cbf")
    own = dataclasses.replace(OnlineCbfConfig(), filter=FilterSettings(shared_k2=None))
    RunDir.check_resumable(tmp_path, own, kind="online_cbf")  # what it trained with: resumes
    # a run that wrote the key compares by what it wrote
    RunDir.open(tmp_path / "new", OnlineCbfConfig(), kind="online_cbf", resume=False)
    RunDir.check_resumable(tmp_path / "new", OnlineCbfConfig(), kind="online_cbf")
