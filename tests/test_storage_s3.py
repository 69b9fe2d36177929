"""What only an object store does, against the S3 test server (moto): conditional writes racing, listings of
many pages, streaming and multipart uploads in bounded memory, objects replaced while read, retries, and each
error a user meets said in one sentence. (The behaviour every store shares: test_storage.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from etl import storage
from etl.errors import EtlError, UsageError
from etl.storage import Store, open_store
from tests.support.s3 import FaultyProxy, S3Server, free_port, iam_user

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


@pytest.fixture
def store(s3_location: str) -> Store:
    return open_store(s3_location)


def child(script: str, *args: str, temporary: Path | None = None) -> subprocess.Popen[str]:
    """A Python process running `script` (the test's environment: the same server; `temporary`: its
    TMPDIR)."""
    env = {**os.environ, **({"TMPDIR": str(temporary)} if temporary else {})}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )


# --- conditional writes --------------------------------------------------------------------------------------


def test_of_many_writers_creating_one_object_one_wins(store: Store) -> None:
    with ThreadPoolExecutor(8) as pool:
        etags = list(pool.map(lambda n: store.put_if_absent("_state/plan.json", f"{n}".encode()), range(8)))
    winners = [n for n, etag in enumerate(etags) if etag]
    assert len(winners) == 1 and store.read_bytes("_state/plan.json") == f"{winners[0]}".encode()


def test_of_many_writers_replacing_one_version_one_wins(store: Store) -> None:
    seen = store.put_if_absent("_state/lock.json", b"v0")
    assert seen
    with ThreadPoolExecutor(8) as pool:
        replaced = pool.map(lambda n: store.replace_if_unchanged("_state/lock.json", f"{n}".encode(), seen), range(8))
        etags = list(replaced)
    winners = [n for n, etag in enumerate(etags) if etag]
    assert len(winners) == 1 and store.read_bytes("_state/lock.json") == f"{winners[0]}".encode()


# --- listing, streaming, uploading ---------------------------------------------------------------------------


def test_a_listing_of_more_than_one_page(store: Store) -> None:
    keys = [f"landing/2024/{n:05d}.json" for n in range(1_050)]  # S3 lists 1,000 objects a page
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put(key, b"{}"), keys))
    store.put("other/x.json", b"{}")
    assert [info.key for info in store.list("landing")] == keys
    assert len(store.list()) == 1_051


def test_a_large_object_is_streamed_in_bounded_memory(store: Store) -> None:
    store.put("big.ndjson", os.urandom(64 * MB))
    reader = child(
        """
        import hashlib, sys
        from etl.storage import open_store

        def peak_kb():
            return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))

        store = open_store(sys.argv[1])
        store.head("big.ndjson")  # (the client is set up before the baseline)
        before, digest = peak_kb(), hashlib.sha256()
        for chunk in store.read_chunks("big.ndjson", chunk_bytes=1024 * 1024):
            digest.update(chunk)
        print(peak_kb() - before, digest.hexdigest())
        """,
        store.location,
    )
    output, _ = reader.communicate(timeout=120)
    grown_kb, digest = output.split()
    assert digest == storage.sha256_of(store, "big.ndjson")
    assert int(grown_kb) < 24 * 1024, f"reading 64 MB in 1 MB chunks grew the peak by {int(grown_kb) // 1024} MB"


def test_a_large_object_is_uploaded_in_parts_and_appears_whole(store: Store) -> None:
    data = os.urandom(20 * MB)
    with store.writing("events/event_date=2024-05-01/part-0.parquet") as path:
        path.write_bytes(data)
    info = store.head("events/event_date=2024-05-01/part-0.parquet")
    assert info is not None and info.etag.endswith('-3"')  # a multipart upload's etag: 3 parts of 8 MB
    assert store.read_bytes(info.key) == data


def test_an_upload_killed_half_way_leaves_no_visible_object(store: Store, s3_env: S3Server, tmp_path: Path) -> None:
    import boto3

    uploader = child(
        """
        import os, sys
        from etl.storage import open_store

        with open_store(sys.argv[1]).writing("big/part-0.parquet") as path:
            path.write_bytes(os.urandom(200 * 1024 * 1024))
            print("uploading", flush=True)
        """,
        store.location,
        temporary=tmp_path,  # (its local file, 200 MB, stays where it is killed: not in the machine's)
    )
    bucket, prefix = store.location.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=s3_env.endpoint, region_name="us-east-1")
    try:
        assert uploader.stdout is not None and uploader.stdout.readline() == "uploading\n"
        deadline = time.monotonic() + 60
        while not client.list_multipart_uploads(Bucket=bucket).get("Uploads") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads"), "no multipart upload was seen"
    finally:
        uploader.send_signal(signal.SIGKILL)
        uploader.wait()
    assert store.list() == [] and store.head("big/part-0.parquet") is None
    assert [upload["Key"] for upload in client.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [
        f"{prefix}/big/part-0.parquet"  # parts, invisible: a lifecycle rule removes them
    ]


def test_scratch_space_is_local(store: Store) -> None:
    assert store.local_path("x") is None
    with store.scratch("lifetime") as folder:
        assert folder.is_dir()
    assert not folder.exists()


# --- objects replaced while they are read --------------------------------------------------------------------


def test_an_object_replaced_while_read_is_read_whole_as_it_was(store: Store) -> None:
    old = os.urandom(3 * MB)
    store.put("feed.ndjson", old)
    listed = store.head("feed.ndjson")
    assert listed is not None
    chunks = store.read_chunks("feed.ndjson", chunk_bytes=MB, expect_etag=listed.etag)
    first = next(chunks)
    store.put("feed.ndjson", os.urandom(3 * MB))
    assert first + b"".join(chunks) == old  # one GET: the version it started with, never a mix


def test_an_object_replaced_while_a_dropped_read_resumes_is_refused(store: Store, faulty_s3: FaultyProxy) -> None:
    store.put("feed.ndjson", os.urandom(3 * MB))
    listed = store.head("feed.ndjson")
    assert listed is not None
    os.environ["AWS_ENDPOINT_URL"] = faulty_s3.endpoint  # (s3_env puts it back)
    through_proxy = open_store(store.location)
    faulty_s3.cut_bodies_at = MB  # every response body stops after 1 MB: the read resumes where it stopped
    chunks = through_proxy.read_chunks("feed.ndjson", chunk_bytes=MB // 4, expect_etag=listed.etag)
    next(chunks)
    store.put("feed.ndjson", os.urandom(3 * MB))
    with pytest.raises(storage.ObjectChanged, match=r"feed.ndjson changed while it was being read"):
        b"".join(chunks)


# --- retries -------------------------------------------------------------------------------------------------


@pytest.fixture
def flaky(store: Store, faulty_s3: FaultyProxy, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The test's store, reached through the faulty proxy (2 retries: ETL_S3_RETRIES in s3_env)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", faulty_s3.endpoint)
    return open_store(store.location)


def test_transient_errors_are_retried(flaky: Store, faulty_s3: FaultyProxy) -> None:
    faulty_s3.fail_next = 2  # 503 SlowDown twice
    flaky.put("a.json", b"{}")
    assert faulty_s3.requests == 3
    faulty_s3.drop_next = 2  # connections closed without an answer
    assert flaky.read_bytes("a.json") == b"{}"
    data = os.urandom(3 * MB)
    flaky.put("b.bin", data)
    faulty_s3.cut_bodies_at = MB  # a download cut off resumes where it stopped
    assert flaky.read_bytes("b.bin") == data


def test_a_store_failing_after_every_retry_is_said_so(flaky: Store, faulty_s3: FaultyProxy) -> None:
    faulty_s3.fail_next = 3
    with pytest.raises(storage.StoreUnavailable) as failed:
        flaky.put("a.json", b"{}")
    assert str(failed.value) == (
        f"the object store at {faulty_s3.endpoint} failed while writing {flaky.describe('a.json')} "
        "(after 2 retries): 503 Service Unavailable (SlowDown)"
    )
    faulty_s3.drop_next = 3
    with pytest.raises(storage.StoreUnavailable, match=r"reading .*a.json \(after 2 retries\): the connection failed"):
        flaky.read_bytes("a.json")


# --- errors a user meets -------------------------------------------------------------------------------------


def test_a_bucket_that_does_not_exist(s3_env: S3Server) -> None:
    store = open_store("s3://no-such-bucket/warehouse")
    expected = f"the bucket no-such-bucket does not exist at {s3_env.endpoint} (for s3://no-such-bucket/warehouse"
    for action in (store.list, lambda: store.read_bytes("x"), lambda: store.put("x", b"1")):
        with pytest.raises(storage.BucketNotFound) as missing:
            action()
        assert str(missing.value).startswith(expected)
        assert isinstance(missing.value, UsageError)  # a location that cannot be used: exit 2


def test_an_endpoint_where_nothing_answers(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    with pytest.raises(storage.EndpointUnreachable) as unreachable:
        open_store(f"s3://{s3_bucket}/landing").list()
    assert str(unreachable.value) == (
        f"cannot reach the object store at {closed} (after 2 retries): check AWS_ENDPOINT_URL and the network"
    )


def test_no_credentials(s3_location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(storage.NoCredentials, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set"):
        open_store(s3_location)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")  # nothing left but the instance role: none here
    with pytest.raises(storage.NoCredentials) as none:
        open_store(s3_location).list()
    assert str(none.value) == (
        f"no AWS credentials found for {s3_location}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "or AWS_PROFILE, or run with an instance role"
    )


def test_credentials_from_a_profile(s3_location: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = open_store(s3_location)
    store.put("a.json", b"{}")
    credentials = tmp_path / "credentials"
    credentials.write_text("[etl]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "etl")
    assert open_store(s3_location).read_bytes("a.json") == b"{}"
    monkeypatch.setenv("AWS_PROFILE", "missing")
    with pytest.raises(storage.NoCredentials, match="the AWS profile missing cannot be used"):
        open_store(s3_location)
    monkeypatch.setenv("AWS_PROFILE", "etl")
    monkeypatch.setitem(sys.modules, "boto3", None)  # as where boto3 is not installed
    with pytest.raises(storage.NoCredentials, match="AWS_PROFILE=etl is set, and reading AWS profiles needs boto3"):
        open_store(s3_location)


def test_credentials_the_store_refuses(s3_location: str, s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    s3_env.enforce_iam()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY")
    with pytest.raises(storage.CredentialsRefused) as refused:
        open_store(s3_location).list()
    assert str(refused.value) == (
        f"the object store at {s3_env.endpoint} refused the AWS credentials in use (InvalidAccessKeyId) "
        f"when listing {s3_location}"
    )


def test_access_denied_on_read_and_on_write(s3_bucket: str, s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = open_store(f"s3://{s3_bucket}")
    setup.put("landing/a.json", b"{}")
    setup.put("private/b.json", b"{}")
    key_id, secret = iam_user(
        s3_env,
        "landing-reader",
        [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{s3_bucket}"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{s3_bucket}/landing/*"},
        ],
    )
    s3_env.enforce_iam()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    landing, private = open_store(f"s3://{s3_bucket}/landing"), open_store(f"s3://{s3_bucket}/private")
    assert landing.read_bytes("a.json") == b"{}"
    with pytest.raises(storage.AccessDenied) as denied:
        private.read_bytes("b.json")
    assert (
        str(denied.value) == f"access denied: the AWS credentials in use may not read s3://{s3_bucket}/private/b.json"
    )
    with pytest.raises(storage.AccessDenied, match=f"may not write to s3://{s3_bucket}/landing/c.json$"):
        landing.put("c.json", b"{}")
    with pytest.raises(storage.AccessDenied, match="may not write to"), landing.writing("d.json") as path:
        path.write_bytes(b"{}")
    assert isinstance(denied.value, EtlError) and not isinstance(denied.value, UsageError)  # exit 1
