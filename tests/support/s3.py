"""An S3 API server for the tests: moto in server mode, started once per session on 127.0.0.1.

moto runs as its own process (`moto_server -H 127.0.0.1 -p PORT`), not as moto's in-process threaded
server, which deadlocks with some Rust S3 clients. Only loopback traffic: the server binds 127.0.0.1,
and the instance metadata service (the AWS chain's last resort) points at a closed loopback port.

Fixtures (any test module can use them; tests/conftest.py registers this module):
- `s3_server`: the server (session); `s3_env`: the AWS environment pointing at it, moto reset (each
  test); `s3_bucket`: a new bucket; `s3_location`: `s3://BUCKET/root`, a store's root in it.
- `faulty_s3`: a proxy in front of the server that fails requests on demand (fault injection):
  point `AWS_ENDPOINT_URL` at `faulty_s3.endpoint` and set `fail_next`, `drop_next` or `cut_bodies_at`.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REGION = "us-east-1"
# Variables of the AWS chain that a developer's shell may hold: none of them reaches a test.
_AWS_VARIABLES = (
    *("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT"),
    *("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
    *("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_DEFAULT_REGION"),
)
_START_SECONDS = 60


@dataclass
class S3Server:
    """A moto server on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget every bucket, object and IAM user; stop enforcing IAM policies."""
        self._post("/moto-api/reset")
        self._post("/moto-api/reset-auth", b"inf")

    def enforce_iam(self) -> None:
        """From now on every request needs an IAM user's key and is checked against its policies."""
        self._post("/moto-api/reset-auth", b"0")

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        urllib.request.urlopen(request, timeout=10).read()

    def _post(self, path: str, body: bytes = b"") -> None:
        request = urllib.request.Request(
            f"{self.endpoint}{path}", data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(request, timeout=10).read()


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(log: Path) -> S3Server:
    command = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if command is None:
        pytest.fail("moto_server is not installed: pip install -e '.[dev]' installs moto[server]")
    port = free_port()
    with open(log, "wb") as output:
        process = subprocess.Popen([command, "-H", "127.0.0.1", "-p", str(port)], stdout=output, stderr=output)
    server = S3Server(port, process, log)
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto_server stopped at once (exit {process.returncode}): {log.read_text()[-2000:]}")
        try:
            server.reset()
            return server
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    pytest.fail(f"moto_server did not answer on port {port} within {_START_SECONDS} s")


def stop_server(server: S3Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_server(tmp_path_factory.mktemp("moto") / "moto_server.log")
    yield server
    stop_server(server)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The AWS environment of a test (and of the processes it starts): the test server, dummy keys,
    short retries; moto reset."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # never the network
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("ETL_S3_RETRIES", "2")
    monkeypatch.setenv("ETL_S3_BACKOFF_SECONDS", "0.01")
    s3_server.reset()
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: S3Server) -> str:
    name = f"test-{secrets.token_hex(4)}"
    s3_env.create_bucket(name)
    return name


@pytest.fixture
def s3_location(s3_bucket: str) -> str:
    """A store's root in a new bucket of the test server."""
    return f"s3://{s3_bucket}/root"


class FaultyProxy:
    """A proxy in front of the test server that fails requests on demand.

    `fail_next` requests get a 503 SlowDown, `drop_next` requests a closed connection without an
    answer; with `cut_bodies_at`, GET bodies stop after that many bytes (the connection closes).
    `requests` counts every request, failed or passed on.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.fail_next = 0
        self.drop_next = 0
        self.cut_bodies_at: int | None = None
        self.requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault(self) -> str:
        """What to do with the next request: 'fail', 'drop' or 'pass'."""
        with self._lock:
            self.requests += 1
            if self.fail_next:
                self.fail_next -= 1
                return "fail"
            if self.drop_next:
                self.drop_next -= 1
                return "drop"
            return "pass"


def _handler(proxy: FaultyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = proxy.fault()
            if fault == "drop":
                self.close_connection = True
                return
            if fault == "fail":
                self._answer(503, b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>")
                return
            self._pass_on(body)

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _pass_on(self, body: bytes) -> None:
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
            try:
                upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                response = upstream.getresponse()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "server", "date"):
                        self.send_header(name, value)
                self.end_headers()
                self._copy_body(response)
            finally:
                upstream.close()

        def _copy_body(self, response: http.client.HTTPResponse) -> None:
            limit = proxy.cut_bodies_at if self.command == "GET" else None
            sent = 0
            while chunk := response.read(64 * 1024):
                if limit is not None and sent + len(chunk) > limit:
                    self.wfile.write(chunk[: limit - sent])
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                sent += len(chunk)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

    return Handler


@pytest.fixture
def faulty_s3(s3_env: S3Server) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(s3_env.port)
    yield proxy
    proxy.close()


def iam_user(server: S3Server, name: str, statements: list[dict[str, object]]) -> tuple[str, str]:
    """An IAM user of the test server allowed what `statements` allow: its access key id and secret.
    (boto3 comes with moto; the server must not enforce IAM yet.)"""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": statements}
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]
