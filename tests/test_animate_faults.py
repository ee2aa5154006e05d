"""Faults during `ganbatch animate`: a killed generator actor, a lost worker node, S3 cut off for a while.

Real everything: the command runs as a subprocess (its own local Ray, or a `ray.cluster_utils.Cluster` of a head and
two worker nodes on loopback reached through RAY_ADDRESS, so it never meets the session's `ray_local`), real ffmpeg,
and the moto S3 server behind a TCP proxy of our own that the tests cut and restore. Timeouts are generous: these
runs share two cores with everything else.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import numpy as np
import psutil
import pytest
import torch
from PIL import Image

from ganbatch.io import storage
from ganbatch.models import GANimationGenerator, save_generator
from ganbatch.synth import render_face, sample_identity

SIZE = 64
RUN_TIMEOUT = 420
GENERATOR_TITLE = "MapBatches(Generate)"


class TcpProxy:
    """Forwards 127.0.0.1:port to a target address, one thread pair per connection; `cut()` closes the listener
    and every open connection (clients then get connection refused), `restore()` listens on the same port again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = None
        self.restore()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def s3_proxy(s3_server):
    host, port = s3_server.removeprefix("http://").split(":")
    proxy = TcpProxy((host, int(port)))
    yield proxy
    proxy.cut()


@pytest.fixture
def via_proxy(s3_proxy, monkeypatch):
    """This process's S3 clients go through the proxy."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_proxy.endpoint)
    return s3_proxy


# --------------------------------------------------------------------------------------------------- storage


def test_a_read_rides_out_a_short_outage(via_proxy, s3_bucket):
    uri = f"s3://{s3_bucket}/a.bin"
    storage.write_bytes(uri, b"payload")
    via_proxy.cut()
    threading.Timer(3.0, via_proxy.restore).start()
    started = time.monotonic()
    with storage.retry_budget(60):
        assert storage.read_bytes(uri) == b"payload"
    assert time.monotonic() - started >= 2.5  # it waited for the proxy to come back


def test_an_outage_longer_than_the_budget_fails_with_the_reason(via_proxy, s3_bucket):
    uri = f"s3://{s3_bucket}/a.bin"
    storage.write_bytes(uri, b"payload")
    via_proxy.cut()
    started = time.monotonic()
    with storage.retry_budget(2), pytest.raises(storage.StorageError, match="gave up after retrying for 2 s"):
        storage.read_bytes(uri)
    assert time.monotonic() - started < 60
    with storage.retry_budget(0), pytest.raises(storage.StorageError):  # a permanent error is not retried at all
        storage.read_bytes("s3://no-such-bucket-here/a.bin")


def test_the_manifest_upload_never_stops_a_run(via_proxy, s3_bucket):
    from ganbatch.animate.manifest import ManifestWriter, manifest_row

    uri = f"s3://{s3_bucket}/out/manifest.jsonl"
    row = manifest_row(input="a.jpg", output="a.mp4", status="ok", model="m.pt", target="happy")
    with storage.retry_budget(1):
        writer = ManifestWriter(uri, upload_every=0)
        writer.append(row)
        via_proxy.cut()
        writer.append({**row, "input": "b.jpg"})  # the upload fails; the row is kept
        threading.Timer(3.0, via_proxy.restore).start()
        writer.close()  # the last upload waits for S3 longer than the items' budget
    assert writer.problem is None
    assert [json.loads(line)["input"] for line in storage.read_bytes(uri).decode().splitlines()] == ["a.jpg", "b.jpg"]


# --------------------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small GANimation generator (64 px), slow enough that a run of 12 items lasts a few seconds."""
    path = tmp_path_factory.mktemp("model") / "small.pt"
    torch.manual_seed(0)
    save_generator(GANimationGenerator(conv_dim=16, repeat_num=2), path, {"image_size": SIZE})
    return path


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faces")
    for seed in range(12):
        face = render_face(sample_identity(seed), np.zeros(17), size=SIZE)[0]
        Image.fromarray(face).save(folder / f"face{seed:02d}.png")
    return folder


def start_animate(inputs: str, out: str, model: Path, *extra, env: dict | None = None) -> subprocess.Popen:
    """`ganbatch -v animate` in a subprocess (-v: the workers' warnings too), its stderr going to a file (a pipe
    nobody reads would block it)."""
    command = [sys.executable, "-m", "ganbatch.cli", "-v", "animate", inputs, "--model", str(model), "--out", out,
               "--expression", "happy", "--frames", "32", "--batch-size", "8", "--no-report", *extra]
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"ganbatch-faults-{os.getpid()}-{time.time_ns()}.log", "w+")
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log,
                               text=True)
    process.log = log
    return process


def node_with_a_generator(workers):
    """The worker node (of `workers`) whose raylet runs a generator actor, or None."""
    for node in workers:
        raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
        if generator_processes(raylet):
            return node
    return None


def wait_until(condition, process: subprocess.Popen, what: str):
    """condition()'s first true value, polled while the command runs."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            raise AssertionError(f"the command ended (exit {process.returncode}) before {what}:\n"
                                 f"{stderr_of(process)[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stderr_of(process: subprocess.Popen) -> str:
    process.log.seek(0)
    return process.log.read()


def finish(process: subprocess.Popen) -> tuple[int, str]:
    try:
        process.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    stderr = stderr_of(process)
    process.log.close()
    os.unlink(process.log.name)
    return process.returncode, stderr


def local_rows(out: Path) -> list[dict]:
    """The manifest's complete rows so far (it may be half-way through writing one)."""
    path = out / "manifest.jsonl"
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def generator_processes(root: psutil.Process) -> list[psutil.Process]:
    """The generator actors' processes among root's descendants (Ray titles them after the operator)."""
    found = []
    for child in root.children(recursive=True):
        try:
            if GENERATOR_TITLE in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def assert_each_output_once(rows: list[dict], out: Path, count: int) -> None:
    assert sorted(row["status"] for row in rows) == ["ok"] * count, [row["error"] for row in rows]
    assert len({row["output"] for row in rows}) == count  # one row per output
    made = sorted(path.name for path in out.rglob("*") if path.is_file() and path.name != "manifest.jsonl")
    assert made == sorted(Path(row["output"]).name for row in rows)  # and nothing else: no temporaries left


@pytest.mark.slow
def test_a_killed_generator_actor_is_restarted_and_every_item_made_once(model, faces, tmp_path):
    out = tmp_path / "out"
    process = start_animate(str(faces), str(out), model, "--executor", "ray")  # small: in process by default
    wait_until(lambda: local_rows(out), process, "the first video")
    (actor,) = wait_until(lambda: generator_processes(psutil.Process(process.pid)), process, "the generator actor")
    done_at_kill = len(local_rows(out))
    actor.kill()
    code, stderr = finish(process)
    assert done_at_kill < 12, "the run ended before the kill; make the items slower"
    assert code == 0, stderr[-3000:]
    assert "12 videos: 12 ok, 0 failed" in stderr
    assert_each_output_once(local_rows(out), out, 12)


@pytest.fixture
def three_nodes():
    """A head (no CPUs: the driver's node) and two worker nodes of 2 CPUs on loopback."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    cluster.shutdown()


@pytest.mark.slow
def test_a_lost_worker_node_costs_no_item(model, faces, tmp_path, three_nodes):
    cluster, workers = three_nodes
    out = tmp_path / "out"
    process = start_animate(str(faces), str(out), model, "--workers", "2", env={"RAY_ADDRESS": cluster.address})

    wait_until(lambda: local_rows(out), process, "the first video")
    node = wait_until(lambda: node_with_a_generator(workers), process, "a generator actor on a worker node")
    done_at_loss = len(local_rows(out))
    cluster.remove_node(node)
    code, stderr = finish(process)
    assert done_at_loss < 12, "the run ended before the node was removed; make the items slower"
    assert code == 0, stderr[-3000:]
    assert_each_output_once(local_rows(out), out, 12)


def upload_faces(faces: Path, bucket: str, count: int) -> None:
    client = boto3.session.Session().client("s3")
    for path in sorted(faces.glob("*.png"))[:count]:
        client.upload_file(str(path), bucket, f"in/{path.name}")


def s3_keys(bucket: str, prefix: str) -> list[str]:
    client = boto3.session.Session().client("s3")
    return [obj["Key"] for obj in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def s3_rows(bucket: str) -> list[dict]:
    client = boto3.session.Session().client("s3")
    text = client.get_object(Bucket=bucket, Key="out/manifest.jsonl")["Body"].read().decode()
    return [json.loads(line) for line in text.splitlines()]


def run_through_an_outage(model, faces, bucket, proxy, seconds: float, *extra) -> tuple[int, str, set[str]]:
    """Run animate on 10 S3 faces into S3 through the proxy, cutting S3 off for `seconds` once the first video is
    there (watched directly on the server, not through the proxy); the exit status, stderr and the videos the
    server had from before the cut."""
    upload_faces(faces, bucket, 10)
    process = start_animate(f"s3://{bucket}/in", f"s3://{bucket}/out", model, *extra,
                            env={"AWS_ENDPOINT_URL": proxy.endpoint})
    wait_until(lambda: any(key.endswith(".mp4") for key in s3_keys(bucket, "out/")), process, "the first video")
    proxy.cut()
    time.sleep(1)  # an upload whose bytes were all sent before the cut is stored by now
    before_cut = {key for key in s3_keys(bucket, "out/") if key.endswith(".mp4")}
    time.sleep(seconds - 1)
    proxy.restore()
    return (*finish(process), before_cut)


@pytest.mark.slow
def test_s3_unreachable_for_10_seconds_mid_run_costs_no_item(model, faces, s3_bucket, s3_proxy):
    code, stderr, _ = run_through_an_outage(model, faces, s3_bucket, s3_proxy, 10)
    assert code == 0, stderr[-3000:]
    assert "retrying for up to" in stderr  # the outage was met, and ridden out
    rows = s3_rows(s3_bucket)
    assert sorted(row["status"] for row in rows) == ["ok"] * 10
    videos = [key for key in s3_keys(s3_bucket, "out/") if key.endswith(".mp4")]
    assert sorted(videos) == sorted(row["output"].removeprefix(f"s3://{s3_bucket}/") for row in rows)


@pytest.mark.slow
def test_an_outage_longer_than_the_retry_budget_fails_only_the_items_it_hit(model, faces, s3_bucket, s3_proxy):
    code, stderr, before_cut = run_through_an_outage(model, faces, s3_bucket, s3_proxy, 8,
                                                     "--set", "execution.storage_retry_seconds=2")
    assert code == 1, stderr[-3000:]
    rows = s3_rows(s3_bucket)  # finalised after the outage, with a row for every item
    assert len(rows) == 10 and len({row["output"] for row in rows}) == 10
    failed = [row for row in rows if row["status"] == "failed"]
    assert failed and len(failed) < 10
    assert all("S3 unreachable: gave up after retrying for 2 s" in row["error"] for row in failed), failed
    made = {key for key in s3_keys(s3_bucket, "out/") if key.endswith(".mp4")}
    ok = {row["output"].removeprefix(f"s3://{s3_bucket}/") for row in rows if row["status"] == "ok"}
    # Every ok row's video is there, and nothing else, but for a video the server had when the cut came: the
    # server may have stored it whole while the cut took its answer, so the upload could only give up.
    assert ok <= made and made - ok <= before_cut, (made, ok, before_cut)


def test_what_interrupted_writes_left_is_cleaned_up(tmp_path, s3_bucket):
    (tmp_path / "sub").mkdir()
    for name in ("a__happy.mp4", ".a__happy.mp4.tmp-0123abcd", "sub/.b__sad.tmp-89abcdef", ".keep.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub" / ".b__sad.tmp-89abcdef").unlink()
    (tmp_path / "sub" / ".b__sad.tmp-89abcdef").mkdir()  # a PNG folder half written
    assert storage.remove_stale_temporaries(str(tmp_path)) == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        ".keep.txt", "a__happy.mp4", "sub"]

    client = boto3.session.Session().client("s3")
    client.create_multipart_upload(Bucket=s3_bucket, Key="out/c__happy.mp4")
    client.create_multipart_upload(Bucket=s3_bucket, Key="elsewhere/d.mp4")
    assert storage.remove_stale_temporaries(f"s3://{s3_bucket}/out") == 1
    assert [u["Key"] for u in client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])] == [
        "elsewhere/d.mp4"]


# --------------------------------------------------------------------------------------------------- no progress

HOG = """
import sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
@ray.remote(num_cpus=float(sys.argv[2]))
class Hog:
    def ping(self):
        return True
hog = Hog.remote()
ray.get(hog.ping.remote())
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def node_mostly_held():
    """A head (no CPUs) and one 3-CPU worker node, 2 of whose CPUs another driver's actor holds: the cluster's totals
    say 3 CPUs, but once a 1-CPU generator actor is placed no CPU is left for a prepare or encode task."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=3)
    cluster.wait_for_nodes()
    hog = subprocess.Popen([sys.executable, "-c", HOG, cluster.address, "2"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    assert hog.stdout.readline().strip() == "holding"
    yield cluster
    hog.stdin.close()
    hog.wait(timeout=60)
    cluster.shutdown()


@pytest.mark.slow
def test_a_stream_that_cannot_schedule_its_tasks_fails_the_items_left_with_the_reason(model, faces, tmp_path,
                                                                                       node_mostly_held):
    """It waited without a word (400 s, then killed); now, after the stall time, every item has a failed row."""
    out = tmp_path / "out"
    process = start_animate(str(faces), str(out), model, "--workers", "1", "--cpus-per-worker", "1",
                            "--set", "execution.stall_seconds=8", env={"RAY_ADDRESS": node_mostly_held.address})
    code, stderr = finish(process)
    assert code == 1, stderr[-3000:]
    rows = local_rows(out)
    assert len(rows) == 12 and all(row["status"] == "failed" for row in rows), rows
    assert all("no video finished for 8 s while no CPU was free" in row["error"] for row in rows)
    assert "12 videos: 0 ok, 12 failed" in stderr


@pytest.mark.slow
def test_a_lost_node_with_explicit_reservations_never_hangs(model, faces, tmp_path, three_nodes):
    """`--workers 2 --cpus-per-worker 1`: named at planning and in --dry-run; after the node's loss the run ends
    (every item made, or the items left failed with the reason) within the stall time, never waits forever."""
    cluster, workers = three_nodes
    out = tmp_path / "out"
    flags = ["--workers", "2", "--cpus-per-worker", "1"]
    dry = subprocess.run([sys.executable, "-m", "ganbatch.cli", "animate", str(faces), "--model", str(model), "--out",
                          str(out), "--expression", "happy", "--dry-run", "--address", cluster.address, *flags],
                         capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert dry.returncode == 0 and "cannot survive the loss of the largest node (2 CPUs)" in dry.stdout, dry.stderr
    process = start_animate(str(faces), str(out), model, *flags, "--set", "execution.stall_seconds=10",
                            env={"RAY_ADDRESS": cluster.address})

    wait_until(lambda: local_rows(out), process, "the first video")
    cluster.remove_node(wait_until(lambda: node_with_a_generator(workers), process,
                                   "a generator actor on a worker node"))
    code, stderr = finish(process)
    assert "cannot survive the loss of the largest node" in stderr
    rows = local_rows(out)
    assert len({(row["input"], row["target"]) for row in rows}) == 12 == len(rows), rows
    failed = [row for row in rows if row["status"] == "failed"]
    assert code == (1 if failed else 0), stderr[-3000:]
    assert all("no video finished for 10 s" in row["error"] or "pipeline stopped" in row["error"] for row in failed)


# --------------------------------------------------------------------------------------------------- killed driver

@pytest.mark.slow
def test_no_ray_process_outlives_a_killed_driver_by_more_than_a_few_seconds(model, faces, tmp_path):
    """Ray's dashboard and runtime-env agents were still alive 5 s (and minutes) after a SIGKILL of the driver."""
    out = tmp_path / "out"
    process = start_animate(str(faces), str(out), model, "--executor", "ray")  # small: in process by default
    wait_until(lambda: generator_processes(psutil.Process(process.pid)), process, "the generator actor")
    ray_processes = psutil.Process(process.pid).children(recursive=True)
    assert len(ray_processes) >= 4  # the GCS, the raylet, its agents, the workers (and ganbatch's reaper)
    process.kill()
    finish(process)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [child for child in ray_processes if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.2)
    assert not alive, [" ".join(child.cmdline())[:80] for child in alive]
