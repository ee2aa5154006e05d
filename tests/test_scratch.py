"""Scratch folders of killed processes are removed by the next run; a live process's folders are left alone."""
import subprocess
import sys

from ganbatch.io import scratch


def a_finished_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_orphaned_scratch_folders_go_and_live_ones_stay(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(scratch.tempfile, "tempdir", None)  # re-read TMPDIR
    dead = tmp_path / f"ganbatch-video-{a_finished_pid()}-abc"
    (dead / "half.mp4").parent.mkdir()
    (dead / "half.mp4").write_bytes(b"partial")
    other_kind = tmp_path / f"ganbatch-preview-{a_finished_pid()}-abc"
    other_kind.mkdir()
    with scratch.scratch_dir("video") as live:
        assert live.parent == tmp_path and live.is_dir()
        assert scratch.remove_orphans("video") == 1
        assert live.is_dir() and not dead.exists() and other_kind.is_dir()
    assert not live.exists()  # removed when its block ends
