"""Data at rest: what the job and its scripts write is readable by its owner only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from coachflow.private import private_dir, private_file
from tests.helpers import ROOT


def modes(directory: Path) -> dict[str, int]:
    """Every entry under ``directory`` (itself included) -> its permission bits."""
    found = {".": stat.S_IMODE(directory.stat().st_mode)}
    for path in directory.rglob("*"):
        found[str(path.relative_to(directory))] = stat.S_IMODE(path.stat().st_mode)
    return found


def test_private_paths_are_owner_only_whatever_the_umask(tmp_path):
    old = os.umask(0o002)  # the most permissive usual umask
    try:
        out = private_dir(tmp_path / "a" / "b")
        made = private_file(out / "decisions.jsonl")
        existing = tmp_path / "old.jsonl"
        existing.write_text("kept\n")
        existing.chmod(0o644)
        private_file(existing)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(made.stat().st_mode) == 0o600 and made.read_text() == ""
    assert stat.S_IMODE(existing.stat().st_mode) == 0o600 and existing.read_text() == "kept\n"


def test_an_existing_directory_keeps_its_mode(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    private_file(shared / "lineage.jsonl")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert stat.S_IMODE((shared / "lineage.jsonl").stat().st_mode) == 0o600


def test_recovery_store_outputs_and_lineage_of_a_job_run_are_owner_only(tmp_path):
    """recovery-init.sh, then the embedded job with that recovery store, under a permissive umask."""
    recovery, out = tmp_path / "recovery", tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
    env.update({"COACH_OUTPUT_DIR": str(out), "COACH_QUALITY_MONITOR": "false",
                "COACH_PRINT_SUGGESTIONS": "false", "PYTHON": sys.executable})

    def umask_022(command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", 'umask 022; exec "$@"', "-", *command], check=False, cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300)

    init = umask_022([str(ROOT / "scripts" / "recovery-init.sh"), str(recovery), "2"])
    assert init.returncode == 0, init.stderr
    job = umask_022([sys.executable, "-m", "bytewax.run", "-r", str(recovery), "-s", "1", "-b", "0",
                     "flows.coaching:flow"])
    assert job.returncode == 0, job.stderr[-3000:]
    written = {**{f"recovery/{k}": v for k, v in modes(recovery).items()},
               **{f"out/{k}": v for k, v in modes(out).items()}}
    assert "out/decisions.jsonl" in written and "out/lineage.jsonl" in written
    assert (out / "decisions.jsonl").stat().st_size > 0 and (out / "lineage.jsonl").stat().st_size > 0
    assert {"recovery/part-0.sqlite3", "recovery/part-1.sqlite3"} <= set(written)
    loose = {name: oct(mode) for name, mode in written.items()
             if mode & (stat.S_IRWXG | stat.S_IRWXO)}
    assert not loose, f"readable by others than the owner: {loose}"

    # Partitions made before (here: opened up by hand) are closed again when the script runs once more.
    (recovery / "part-0.sqlite3").chmod(0o644)
    again = umask_022([str(ROOT / "scripts" / "recovery-init.sh"), str(recovery), "2"])
    assert again.returncode == 0 and "keeping them" in again.stderr
    assert stat.S_IMODE((recovery / "part-0.sqlite3").stat().st_mode) == 0o600
