"""What goes wrong with an object store, said in one sentence each: the one place where the store's
errors (obstore's, carrying the S3 error code in their text) become errors a user can act on.

Every error here is an `EtlError` (exit 1), except a bucket that does not exist: like a path that
does not exist, that is a location the command cannot use (a `UsageError`, exit 2). Errors that do
not say something about the store itself pass through unchanged: a missing object stays a
`FileNotFoundError`, a refused conditional write stays obstore's `AlreadyExistsError` or
`PreconditionError` (the store turns those into False / None).
"""

from __future__ import annotations

import re
from typing import Literal

import obstore

from etl.errors import EtlError, UsageError

#: What the store was doing when it failed, for the sentence.
Action = Literal["list", "read", "write", "delete"]

_DOING: dict[Action, str] = {"list": "listing", "read": "reading", "write": "writing", "delete": "deleting"}
_MAY_NOT: dict[Action, str] = {"list": "list", "read": "read", "write": "write to", "delete": "delete from"}

_CREDENTIALS_REFUSED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_CREDENTIALS_REFUSED |= {"TokenRefreshRequired", "InvalidSecurity"}
_ACCESS_DENIED = {"AccessDenied", "AllAccessDisabled", "AccountProblem"}
_WRONG_REGION = {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
# obstore names the instance metadata service's paths when it found no other credentials.
_METADATA_PATHS = ("/latest/api/token", "/latest/meta-data/")
_UNREACHABLE = ("tcp connect error", "dns error", "Connection refused", "error trying to connect")


class StorageError(EtlError):
    """The object store could not do what the run asked (one sentence)."""


class NoCredentials(StorageError):
    """No credentials were found in the AWS chain (environment, profile, instance role)."""


class CredentialsRefused(StorageError):
    """The store does not accept the credentials (unknown key, wrong secret, expired token)."""


class AccessDenied(StorageError):
    """The credentials may not do this here."""


class BucketNotFound(StorageError, UsageError):
    """The bucket of a location does not exist (a usage error: exit 2)."""


class EndpointUnreachable(StorageError):
    """Nothing answers at the endpoint (wrong AWS_ENDPOINT_URL, no network)."""


class WrongRegion(StorageError):
    """The bucket is in another region than the one configured."""


class StoreUnavailable(StorageError):
    """The store kept failing (5xx, timeouts, dropped connections) after every retry."""


class ObjectChanged(StorageError):
    """An object was replaced between its listing and the end of its reading."""

    def __init__(self, where: str, etag: str) -> None:
        super().__init__(f"{where} changed while it was being read (it no longer has etag {etag})")
        self.where = where


def storage_error(
    error: Exception, where: str, action: Action, endpoint: str = "", root: str = ""
) -> StorageError | None:
    """The error a user should see for `error`, raised while doing `action` on `where` (a location such
    as `s3://bucket/prefix/key`, in the store at `root`); None when `error` is to pass through unchanged."""
    text = str(error)
    code = error_code(text)
    at = f" at {endpoint}" if endpoint else ""
    if code == "NoSuchBucket":
        return BucketNotFound(f"the bucket {_bucket(where)} does not exist{at} (for {root or where})")
    if isinstance(
        error, FileNotFoundError | obstore.exceptions.AlreadyExistsError | obstore.exceptions.PreconditionError
    ):
        return None
    if code in _CREDENTIALS_REFUSED or isinstance(error, obstore.exceptions.UnauthenticatedError):
        why = f" ({code})" if code else ""
        return CredentialsRefused(
            f"the object store{at} refused the AWS credentials in use{why} when {_DOING[action]} {where}"
        )
    if code in _ACCESS_DENIED or isinstance(error, obstore.exceptions.PermissionDeniedError):
        return AccessDenied(f"access denied: the AWS credentials in use may not {_MAY_NOT[action]} {where}")
    if code in _WRONG_REGION:
        return WrongRegion(f"the bucket {_bucket(where)} is in another region: set AWS_REGION to the bucket's region")
    if any(path in text for path in _METADATA_PATHS):
        return NoCredentials(
            f"no AWS credentials found for {root or where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE, or run with an instance role"
        )
    if "Missing AccessKeyId" in text or "Missing SecretAccessKey" in text:
        return NoCredentials(
            f"incomplete AWS credentials for {root or where}: "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set"
        )
    if not isinstance(error, obstore.exceptions.BaseError):
        return None
    retries = _retries(text)
    if any(sign in text for sign in _UNREACHABLE):
        return EndpointUnreachable(
            f"cannot reach the object store{at or ' of ' + (root or where)}{retries}: "
            "check AWS_ENDPOINT_URL and the network"
        )
    cause = _cause(text, code)
    return StoreUnavailable(f"the object store{at} failed while {_DOING[action]} {where}{retries}: {cause}")


def error_code(text: str) -> str:
    """The S3 error code in an error's text (`<Code>NoSuchBucket</Code>`), or ''."""
    found = re.search(r"<Code>(\w+)</Code>", text) or re.search(r"\(code: (\w+)\)", text)
    return found.group(1) if found else ""


def _bucket(where: str) -> str:
    return where.split("://", 1)[-1].split("/", 1)[0]


def _retries(text: str) -> str:
    found = re.search(r"after (\d+) retries", text)
    return f" (after {found.group(1)} retries)" if found else ""


def _cause(text: str, code: str) -> str:
    """What failed, in a few words (obstore's message holds the request, its timings and a debug dump)."""
    status = re.search(r"status code: (\d{3}[\w ]*)", text)
    if status:
        return f"{status.group(1).strip()}{f' ({code})' if code else ''}"
    if "TimedOut" in text or "timed out" in text.lower():
        return "the request timed out"
    if "error sending request" in text or "body error" in text or "connection closed" in text.lower():
        return "the connection failed"
    return text.split("\n", 1)[0].strip().split(": <?xml", 1)[0]
