"""Fate-sharing for a local Ray: when the command that started it dies without shutting it down (SIGKILL, a crash),
its Ray processes go too, within a second or two.

Ray's own reaper stops its raylet and GCS when the driver dies, but the dashboard and runtime-env agents wait for
the GCS to flush their logs and linger (still alive minutes later). `python -m ganbatch.reaper PID` watches the
driver PID's descendants (every POLL_SECONDS) until its standard input ends: a line `done` first means the driver
shut Ray down itself and nothing is done; otherwise every process it saw (the same process: PID and start time) that
is still there gets SIGKILL. `start_reaper()` starts it from the driver; `ReaperHandle.release()` says `done`.
"""
import os
import select
import subprocess
import sys

POLL_SECONDS = 0.5


def _watch(driver: int) -> None:
    import psutil

    seen: dict[int, float] = {}
    try:
        root = psutil.Process(driver)
    except psutil.Error:
        return
    received = b""
    while True:
        try:
            for child in root.children(recursive=True):
                if child.pid != os.getpid():  # the reaper is one of the driver's children too
                    seen.setdefault(child.pid, child.create_time())
        except psutil.Error:
            pass
        ready, _, _ = select.select([sys.stdin.buffer], [], [], POLL_SECONDS)
        if ready:
            data = os.read(sys.stdin.fileno(), 64)
            received += data
            if not data:
                break
    if b"done" in received:
        return
    for pid, started in seen.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == started:
                process.kill()
        except psutil.Error:
            pass


class ReaperHandle:
    """The running reaper of this driver (see the module doc)."""

    def __init__(self, process: subprocess.Popen):
        self._process = process

    def release(self) -> None:
        """Tell the reaper the driver shut Ray down itself, and let it go."""
        try:
            self._process.stdin.write(b"done\n")
            self._process.stdin.close()
            self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()


def start_reaper() -> ReaperHandle:
    """A reaper watching this process's descendants (start it after the local Ray is up, so it sees them early)."""
    process = subprocess.Popen([sys.executable, "-m", "ganbatch.reaper", str(os.getpid())], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return ReaperHandle(process)


if __name__ == "__main__":
    _watch(int(sys.argv[1]))
