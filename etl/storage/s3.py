"""Connecting to an S3 bucket (AWS or any S3-compatible store: MinIO, R2, Ceph, moto).

Credentials, region and endpoint come from the standard AWS chain, in its order:
- the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` or
  `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`; an `http://` endpoint is allowed
  as given), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`) and container credentials;
- a profile (`AWS_PROFILE`, or the default profile of `~/.aws/credentials`): read with boto3, which is
  then needed (`pip install 'outbound-events-etl[aws]'`); without it an `AWS_PROFILE` is an error that says so;
- the instance role (the EC2 instance metadata service), obstore's last resort.

Transient errors (5xx, timeouts, dropped connections) are retried with exponential backoff and
jitter: up to `ETL_S3_RETRIES` times (default 8), waiting `ETL_S3_BACKOFF_SECONDS` (default 0.2) at
first and about twice as long each time, up to 15 s, for at most 3 minutes per request: a store that
does not answer is reported after some 15-60 s (`ETL_S3_RETRIES=0`: at once). A stalled read fails
after 60 s without a byte (and is retried); there is no limit on how long a whole download may take,
so a large object can be read as slowly as it is parsed (obstore resumes a dropped download where it
stopped, and fails it if the object has changed since it started).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from obstore.store import S3Store

from etl.errors import UsageError
from etl.storage.errors import NoCredentials

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

S3_SCHEME: Final = "s3://"
_ENDPOINT_VARIABLES: Final = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
# Credentials obstore finds itself (environment, web identity, container): no profile is read then.
_OWN_CREDENTIALS: Final = (
    *("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE"),
    *("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # '' for the whole bucket, else without a leading or trailing '/'

    @property
    def uri(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{S3_SCHEME}{self.bucket}"


@dataclass(frozen=True)
class Retries:
    """How transient errors are retried (from `ETL_S3_RETRIES` and `ETL_S3_BACKOFF_SECONDS`)."""

    times: int = 8
    first_backoff: float = 0.2

    @classmethod
    def from_environment(cls) -> Retries:
        return cls(
            times=int(_number("ETL_S3_RETRIES", cls.times)),
            first_backoff=_number("ETL_S3_BACKOFF_SECONDS", cls.first_backoff),
        )

    def config(self) -> RetryConfig:
        return {
            "max_retries": self.times,
            "backoff": {
                "init_backoff": timedelta(seconds=self.first_backoff),
                "max_backoff": timedelta(seconds=max(15.0, self.first_backoff)),
                "base": 3,  # (with jitter the wait about doubles each time)
            },
            "retry_timeout": timedelta(minutes=3),
        }


def parse_location(text: str) -> S3Location:
    """`s3://bucket/some/prefix/` -> bucket and prefix (the store's root)."""
    bucket, _, prefix = text.removeprefix(S3_SCHEME).partition("/")
    if not bucket:
        raise UsageError(f"{text}: an s3:// location names a bucket, as in s3://bucket/prefix")
    return S3Location(bucket, prefix.strip("/"))


def endpoint() -> str:
    """The endpoint from the environment, or '' for AWS's own."""
    return next((os.environ[name] for name in _ENDPOINT_VARIABLES if os.environ.get(name)), "")


def connect(location: S3Location) -> S3Store:
    """An obstore S3Store whose root is the location's prefix."""
    client: ClientConfig = {
        "allow_http": endpoint().startswith("http://"),
        "connect_timeout": timedelta(seconds=5),
        "read_timeout": timedelta(seconds=60),  # a stalled connection
        "timeout": timedelta(days=1),  # not the whole download: a large object is read as it is parsed
    }
    credentials, config = _profile_credentials()
    return S3Store(
        location.bucket,
        prefix=location.prefix or None,
        config=config,
        client_options=client,
        retry_config=Retries.from_environment().config(),
        credential_provider=credentials,
    )


def _profile_credentials() -> tuple[Any, Any]:
    """A credential provider reading an AWS profile (with boto3), and the profile's region; (None, None)
    when obstore finds the credentials itself (environment, web identity, container, instance role)."""
    if any(os.environ.get(name) for name in _OWN_CREDENTIALS):
        return None, None
    profile = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")
    if not profile and not _shared_files_exist():
        return None, None
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        if profile:
            raise NoCredentials(
                f"AWS_PROFILE={profile} is set, and reading AWS profiles needs boto3: "
                "pip install 'outbound-events-etl[aws]', or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from None
        return None, None  # a default profile we cannot read: the instance role may still do
    try:
        provider = Boto3CredentialProvider(boto3.Session(profile_name=profile))
    except ValueError:  # the profile holds no credentials (boto3 found none at all)
        if profile:
            raise NoCredentials(f"the AWS profile {profile} holds no credentials") from None
        return None, None
    except Exception as problem:  # botocore's ProfileNotFound and its configuration errors
        raise NoCredentials(f"the AWS profile {profile or 'default'} cannot be used: {problem}") from None
    region_set = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return provider, None if region_set else (provider.config or None)  # (the config: the profile's region)


def _shared_files_exist() -> bool:
    files = [os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")]
    files.append(os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"))
    return any(Path(name).expanduser().is_file() for name in files)


def _number(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name} must be a number, not {text!r}") from None
    if value < 0:
        raise UsageError(f"{name} must not be negative, not {text!r}")
    return value


def polars_options() -> dict[str, Any]:
    """Storage options for polars' own S3 reader (it finds credentials by the same AWS chain)."""
    options: dict[str, Any] = {}
    if url := endpoint():
        options["aws_endpoint_url"] = url
        options["aws_allow_http"] = "true" if url.startswith("http://") else "false"
    if region := os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        options["aws_region"] = region
    options["max_retries"] = Retries.from_environment().times
    return options
