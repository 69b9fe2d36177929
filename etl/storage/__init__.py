"""The one storage layer: every read and write of landing files and warehouse objects goes through it.

- `store`: a root location (a local folder, `s3://bucket/prefix` or `memory://name`) behind one
  object-store interface;
- `s3`: connecting to a bucket (credentials, endpoint and retries from the AWS chain);
- `errors`: what goes wrong with a store, in one sentence each;
- `streams`: an object's bytes as a decompressed, hashed stream;
- `parquet`: Parquet objects scanned by polars, written whole, streamed or written in batches;
- `documents`: JSON and text objects.
"""

from etl.storage.documents import json_bytes, read_json, read_text, write_json, write_text
from etl.storage.errors import (
    AccessDenied,
    BucketNotFound,
    CredentialsRefused,
    EndpointUnreachable,
    NoCredentials,
    ObjectChanged,
    StorageError,
    StoreUnavailable,
    WrongRegion,
)
from etl.storage.parquet import (
    ParquetSink,
    iter_parquet,
    read_parquet,
    rows_in,
    scan_parquet,
    scan_table,
    sink_parquet,
    sink_parquet_split,
    split_into_objects,
    write_parquet,
)
from etl.storage.store import (
    CHUNK_BYTES,
    ObjectInfo,
    PendingWrite,
    Store,
    UnsupportedLocation,
    forget_memory,
    open_object,
    open_store,
    private_temporary_folder,
    remove_private_temporary_folder,
    use_temporary_folder_of_environment,
)
from etl.storage.streams import ContentHash, iter_bytes, sha256_of

__all__ = [
    "CHUNK_BYTES",
    "AccessDenied",
    "BucketNotFound",
    "ContentHash",
    "CredentialsRefused",
    "EndpointUnreachable",
    "NoCredentials",
    "ObjectChanged",
    "ObjectInfo",
    "ParquetSink",
    "PendingWrite",
    "StorageError",
    "Store",
    "StoreUnavailable",
    "UnsupportedLocation",
    "WrongRegion",
    "forget_memory",
    "iter_bytes",
    "iter_parquet",
    "json_bytes",
    "open_object",
    "open_store",
    "private_temporary_folder",
    "read_json",
    "read_parquet",
    "read_text",
    "remove_private_temporary_folder",
    "rows_in",
    "scan_parquet",
    "scan_table",
    "sha256_of",
    "sink_parquet",
    "sink_parquet_split",
    "split_into_objects",
    "use_temporary_folder_of_environment",
    "write_json",
    "write_parquet",
    "write_text",
]
