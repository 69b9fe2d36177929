"""Shared test settings: the one Hypothesis profile of every property test.

No deadline (a first example pays for imports and Arrow's warm-up), no `too_slow` health check (the
first draw of a text strategy builds Hypothesis' Unicode tables when .hypothesis/ is fresh), and
function-scoped fixtures allowed: the property tests that use `tmp_path` overwrite what they write.
Tests that cost more per example set their own `max_examples`, and nothing else.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "etl",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("etl")

# Runs in tests use one process unless a test asks for workers (tests/test_executors*.py): worker
# processes would cost each small run seconds of start-up. (Processes the tests start inherit it.)
os.environ.setdefault("ETL_WORKERS", "1")

# The S3 test server's fixtures (s3_server, s3_env, s3_bucket, s3_location, faulty_s3), for any test module.
pytest_plugins = ["tests.support.s3"]
