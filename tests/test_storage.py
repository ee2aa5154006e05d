"""Storage on local disk and on S3 (a real moto server over HTTP)."""
import os
import threading
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from ganbatch.io import storage
from ganbatch.io.storage import StorageError

MB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    """A writable root folder: a local temp dir or an S3 prefix in a fresh bucket."""
    if request.param == "local":
        return str(tmp_path / "root")
    return f"s3://{request.getfixturevalue('s3_bucket')}/root"


def _head(uri):
    bucket, key = uri[len("s3://"):].split("/", 1)
    return boto3.session.Session().client("s3").head_object(Bucket=bucket, Key=key)


def _files_in(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def test_write_read_exists_round_trip(root):
    uri = storage.join(root, "a", "b.bin")
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"\x00payload\xff")
    assert storage.exists(uri)
    assert storage.read_bytes(uri) == b"\x00payload\xff"
    storage.write_bytes(uri, b"second")
    assert storage.read_bytes(uri) == b"second"


def test_list_folder_recursive_and_suffixes(root):
    names = ["x.jpg", "y.PNG", "notes.txt", "sub/z.jpg", "sub/deeper/w.png"]
    for name in names:
        storage.write_bytes(storage.join(root, *name.split("/")), name.encode())
    storage.write_bytes(storage.join(root + "-sibling", "not-mine.jpg"), b"")

    def expected(*chosen):
        return sorted(storage.join(root, *n.split("/")) for n in chosen)

    assert storage.list_uris(root) == expected("x.jpg", "y.PNG", "notes.txt")
    assert storage.list_uris(root, recursive=True) == expected(*names)
    assert storage.list_uris(root, suffixes=(".jpg", ".png")) == expected("x.jpg", "y.PNG")
    assert storage.list_uris(root, recursive=True, suffixes=[".png"]) == expected("y.PNG", "sub/deeper/w.png")
    listed = storage.list_uris(storage.join(root, "sub"), recursive=True)
    assert [storage.read_bytes(u) for u in listed] == [b"sub/deeper/w.png", b"sub/z.jpg"]


def test_local_glob_file_uri_and_hidden_files(tmp_path):
    for name in ["a.jpg", "b.jpg", "c.png", "sub/d.jpg", ".e.jpg.tmp-1234abcd"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert storage.list_uris(str(tmp_path / "*.jpg")) == [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]
    assert storage.list_uris(str(tmp_path / "**" / "*.jpg"), recursive=True) == [
        str(tmp_path / n) for n in ("a.jpg", "b.jpg", "sub/d.jpg")
    ]
    assert storage.list_uris(tmp_path.as_uri()) == [str(tmp_path / n) for n in ("a.jpg", "b.jpg", "c.png")]
    assert storage.read_bytes((tmp_path / "c.png").as_uri()) == b""


def test_join_and_is_s3():
    assert storage.join("s3://bucket/prefix/", "/a/", "b.mp4") == "s3://bucket/prefix/a/b.mp4"
    assert storage.join("file:///data", "x.png") == "file:///data/x.png"
    assert storage.join("/data", "a", "x.png") == os.path.join("/data", "a", "x.png")
    assert storage.is_s3("s3://b/k") and not storage.is_s3("/s3/b") and not storage.is_s3("file:///b")


@pytest.mark.parametrize(
    "name, content_type",
    [
        ("clip.mp4", "video/mp4"),
        ("clip.webm", "video/webm"),
        ("clip.gif", "image/gif"),
        ("frame.png", "image/png"),
        ("run.json", "application/json"),
        ("manifest.jsonl", "application/x-ndjson"),
    ],
)
def test_upload_sets_content_type_from_extension(s3_bucket, tmp_path, name, content_type):
    local = tmp_path / name
    local.write_bytes(b"content")
    uri = f"s3://{s3_bucket}/out/{name}"
    storage.upload_file(local, uri)
    assert _head(uri)["ContentType"] == content_type
    assert storage.read_bytes(uri) == b"content"


def test_explicit_content_type_wins(s3_bucket, tmp_path):
    local = tmp_path / "blob.mp4"
    local.write_bytes(b"x")
    storage.upload_file(local, f"s3://{s3_bucket}/a.mp4", content_type="application/octet-stream")
    storage.write_bytes(f"s3://{s3_bucket}/b.jsonl", b"{}\n", content_type="text/plain")
    storage.write_bytes(f"s3://{s3_bucket}/c.jsonl", b"{}\n")
    assert _head(f"s3://{s3_bucket}/a.mp4")["ContentType"] == "application/octet-stream"
    assert _head(f"s3://{s3_bucket}/b.jsonl")["ContentType"] == "text/plain"
    assert _head(f"s3://{s3_bucket}/c.jsonl")["ContentType"] == "application/x-ndjson"


def test_large_upload_is_multipart_and_round_trips(s3_bucket, tmp_path):
    data = os.urandom(9 * MB)
    local = tmp_path / "big.mp4"
    local.write_bytes(data)
    uri = f"s3://{s3_bucket}/big.mp4"
    config = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    storage.upload_file(local, uri, transfer_config=config)
    head = _head(uri)
    # A multipart object's ETag is "<md5 of part md5s>-<part count>": 9 MB in 5 MB parts is 2 parts.
    assert head["ETag"].strip('"').endswith("-2")
    assert head["ContentLength"] == len(data) and head["ContentType"] == "video/mp4"
    storage.download_file(uri, tmp_path / "back" / "big.mp4")
    assert (tmp_path / "back" / "big.mp4").read_bytes() == data
    assert _files_in(tmp_path / "back") == ["big.mp4"]


def test_upload_and_download_between_local_paths(tmp_path):
    (tmp_path / "src.txt").write_bytes(b"abc")
    storage.upload_file(tmp_path / "src.txt", str(tmp_path / "out" / "dst.txt"))
    storage.download_file(str(tmp_path / "out" / "dst.txt"), tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_bytes() == b"abc"


def test_local_copy(s3_bucket, tmp_path):
    local = tmp_path / "face.jpg"
    local.write_bytes(b"jpeg bytes")
    with storage.local_copy(str(local)) as path:
        assert path == local
    storage.write_bytes(f"s3://{s3_bucket}/imgs/face.jpg", b"jpeg bytes")
    with storage.local_copy(f"s3://{s3_bucket}/imgs/face.jpg") as path:
        assert path.name == "face.jpg" and path.read_bytes() == b"jpeg bytes"
    assert not path.exists()


def test_atomic_local_path_commits_only_on_success(tmp_path):
    final = tmp_path / "out.bin"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with storage.atomic_local_path(final) as tmp:
            assert tmp.parent == final.parent and tmp.name.startswith(".out.bin.tmp-")
            tmp.write_bytes(b"half writ")
            assert final.read_bytes() == b"old"
            raise RuntimeError("writer crashed")
    assert final.read_bytes() == b"old"
    assert _files_in(tmp_path) == ["out.bin"]

    with storage.atomic_local_path(tmp_path / "new" / "fresh.bin") as tmp:
        tmp.write_bytes(b"complete")
        assert not (tmp_path / "new" / "fresh.bin").exists()
    assert (tmp_path / "new" / "fresh.bin").read_bytes() == b"complete"
    assert _files_in(tmp_path / "new") == ["fresh.bin"]


def test_atomic_local_path_replaces_a_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "stale.png").write_bytes(b"")
    with storage.atomic_local_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "frame_00000.png").write_bytes(b"new")
    assert _files_in(folder) == ["frame_00000.png"]
    assert _files_in(tmp_path) == ["frames"]


def test_local_errors_name_the_uri(tmp_path):
    missing = str(tmp_path / "nope.jpg")
    for call in (lambda: storage.read_bytes(missing), lambda: storage.list_uris(missing),
                 lambda: storage.local_copy(missing).__enter__()):
        with pytest.raises(StorageError, match="not found") as info:
            call()
        assert info.value.uri == missing and missing in str(info.value)
    with pytest.raises(StorageError, match="not found") as info:
        storage.upload_file(missing, str(tmp_path / "dst.jpg"))
    assert info.value.uri == missing and not (tmp_path / "dst.jpg").exists()
    with pytest.raises(StorageError, match="unsupported URI scheme"):
        storage.read_bytes("http://example.com/x.jpg")


def test_s3_errors_name_the_uri(s3_bucket, tmp_path):
    missing_key = f"s3://{s3_bucket}/no/such.jpg"
    with pytest.raises(StorageError, match="not found") as info:
        storage.read_bytes(missing_key)
    assert info.value.uri == missing_key
    with pytest.raises(StorageError, match="not found"):
        storage.download_file(missing_key, tmp_path / "such.jpg")
    assert list(tmp_path.iterdir()) == []
    assert storage.exists(missing_key) is False

    no_bucket = "s3://ganbatch-no-such-bucket/k.jpg"
    (tmp_path / "k.jpg").write_bytes(b"x")
    calls = [lambda: storage.read_bytes(no_bucket), lambda: storage.exists(no_bucket),
             lambda: storage.write_bytes(no_bucket, b"x"), lambda: storage.upload_file(tmp_path / "k.jpg", no_bucket),
             lambda: storage.list_uris("s3://ganbatch-no-such-bucket/")]
    for call in calls:
        with pytest.raises(StorageError, match="bucket 'ganbatch-no-such-bucket' does not exist") as info:
            call()
        assert info.value.uri.startswith("s3://ganbatch-no-such-bucket/")


def test_missing_credentials_are_reported(s3_bucket, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    uri = f"s3://{s3_bucket}/x.bin"
    with pytest.raises(StorageError, match="no AWS credentials") as info:
        storage.write_bytes(uri, b"x")
    assert info.value.uri == uri


def test_service_specific_endpoint_variable(s3_bucket, s3_server, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    assert storage.s3_client().meta.endpoint_url == s3_server
    storage.write_bytes(f"s3://{s3_bucket}/via-s3-endpoint.txt", b"ok")
    assert storage.read_bytes(f"s3://{s3_bucket}/via-s3-endpoint.txt") == b"ok"


def test_client_is_shared_across_threads(s3_server):
    clients = []
    threads = [threading.Thread(target=lambda: clients.append(storage.s3_client())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in clients}) == 1 and clients[0] is storage.s3_client()
    assert clients[0].meta.endpoint_url == s3_server


def test_absolute_is_the_one_form_workers_get(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert storage.absolute("s3://bucket/run/") == "s3://bucket/run/"
    assert storage.absolute("photos") == str(tmp_path / "photos")
    assert storage.absolute(Path("a") / ".." / "b") == str(tmp_path / "b")
    assert storage.absolute("file:///data/my%20faces") == "/data/my faces"
    assert storage.absolute("~/runs") == str(tmp_path / "home" / "runs")


def test_ray_trains_filesystem_reaches_the_run_files_s3(s3_bucket, monkeypatch):
    """The pyarrow filesystem Ray Train writes checkpoints with uses storage's endpoint, so what one writes the
    other reads."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "5")
    path, filesystem = storage.pyarrow_filesystem(f"s3://{s3_bucket}/runs/")
    assert path == f"{s3_bucket}/runs"
    with filesystem.open_output_stream(f"{path}/checkpoint_000001/state.pt") as stream:
        stream.write(b"weights")
    assert storage.read_bytes(f"s3://{s3_bucket}/runs/checkpoint_000001/state.pt") == b"weights"
    storage.write_bytes(f"s3://{s3_bucket}/runs/metrics.jsonl", b"{}\n")
    with filesystem.open_input_stream(f"{path}/metrics.jsonl") as stream:
        assert stream.read() == b"{}\n"
