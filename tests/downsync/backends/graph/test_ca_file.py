"""A tenant's CA bundle written to a file for requests: never seen half-written by a gateway built at the same time."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from downsync.backends.graph.client import ca_file


def test_gateways_built_at_once_all_read_the_whole_bundle() -> None:
    # Unique per run, so the file is new: 16 gateways of one tenant built at once, as when a worker starts.
    pem = f"-----BEGIN CERTIFICATE-----\n{uuid.uuid4().hex * 200}\n-----END CERTIFICATE-----\n"

    def read() -> str:
        path = ca_file(pem)
        assert path is not None
        return Path(path).read_text()

    with ThreadPoolExecutor(16) as pool:
        seen = list(pool.map(lambda _: read(), range(64)))
    assert seen == [pem] * 64
    path = Path(ca_file(pem) or "")
    assert not list(path.parent.glob(f"{path.name}.*.tmp"))  # nothing left aside
    path.unlink()
