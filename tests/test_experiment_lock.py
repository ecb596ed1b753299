"""One run per experiment directory: a second run stops at once with one line naming the holder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.io_utils import exclusive_lock
from pipeline.workflow.runner import ExperimentBusy, experiment_lock
from recipes.video_activity.run import main as recipe_main
from recipes.video_activity.stages import DEFAULT_CONFIG

REPO = Path(__file__).resolve().parents[1]
TINY = DEFAULT_CONFIG.parent / "tiny.yaml"


def test_a_second_run_on_a_busy_experiment_stops_at_once(tmp_path: Path, capsys):
    exp = tmp_path / "exp"
    with experiment_lock(exp):  # another run holds it (flock conflicts across open files)
        with pytest.raises(SystemExit) as info:
            recipe_main(["--config", str(TINY), "--exp-dir", str(exp), "--stage", "9"])
        assert info.value.code == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1
    assert f"another run is using this experiment directory (pid {os.getpid()} on {socket.gethostname()})" in err[0]
    assert not (exp / "results.json").exists()
    # once the holder is gone the directory is free again, and the lock file stays harmless
    assert recipe_main(["--config", str(TINY), "--exp-dir", str(exp), "--stage", "9"]) == {}


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path: Path):
    lock = tmp_path / "exp" / ".lock"
    code = (
        "import os, sys\n"
        "from pipeline.io_utils import exclusive_lock\n"
        f"with exclusive_lock({str(lock)!r}, RuntimeError):\n"
        "    print('held', flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9 and proc.stdout.strip() == "held"
    assert lock.read_text().startswith("pid ")  # the dead holder's note is still there
    with exclusive_lock(lock, RuntimeError):
        assert lock.read_text().startswith(f"pid {os.getpid()} on ")
    with experiment_lock(tmp_path / "exp"), pytest.raises(ExperimentBusy, match="another run"):  # noqa: SIM117
        with experiment_lock(tmp_path / "exp"):
            pass


def test_only_rank_zero_holds_the_lock(tmp_path: Path, monkeypatch):
    with experiment_lock(tmp_path):
        monkeypatch.setenv("RANK", "1")
        with experiment_lock(tmp_path):  # a worker rank of the same torchrun job
            pass
