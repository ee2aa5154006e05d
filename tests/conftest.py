"""Shared test fixtures: the read-only ../shared fixtures, small-thread torch, a runtime cache of the session's own."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
# The runtime cache (`auto`'s decisions and exported models) of this test session, never the user's; set before any
# test starts a subprocess or Ray, which inherit it. Tests of the cache itself use folders of their own.
SESSION_CACHE = os.environ["GANBATCH_CACHE"] = tempfile.mkdtemp(prefix="ganbatch-test-cache-")

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture(autouse=True, scope="session")
def session_cache():
    """The session's runtime cache folder, removed when the session ends (its exports are megabytes each)."""
    yield SESSION_CACHE
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_fixtures():
    """Path to ../shared/fixtures (files made by the original tools); skips when absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"../shared/fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server over HTTP for the session; AWS_* env vars point boto3 (and later Ray workers) at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        yield endpoint
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on the moto server (its name)."""
    import uuid

    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.session.Session().client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def ray_local(s3_server):
    """One real local Ray instance for the whole test session (started after the S3 env vars so workers see them)."""
    import ray

    ray.init(num_cpus=4, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True, scope="session")
def ganbatch_logging():
    """The CLI's logging setup (INFO lines of the `ganbatch` logger on stderr), as `ganbatch` commands have it."""
    from ganbatch.logs import setup_logging

    setup_logging(0)
