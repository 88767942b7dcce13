"""BodyReader: the bound holds for decoded bytes, at the default or at an endpoint's own limit."""

from __future__ import annotations

import gzip

import pytest

from airflow_provider_plugz.transports.body import MAX_BODY_BYTES, BodyReader


@pytest.mark.parametrize("encoding", [pytest.param(None, id="identity"), pytest.param("gzip", id="gzip")])
@pytest.mark.parametrize(
    ("limit", "size", "kept"),
    [
        pytest.param(MAX_BODY_BYTES, MAX_BODY_BYTES, True, id="default-at-the-limit"),
        pytest.param(MAX_BODY_BYTES, MAX_BODY_BYTES + 1, False, id="default-one-byte-over"),
        pytest.param(100, 100, True, id="small-limit-at"),
        pytest.param(100, 101, False, id="small-limit-over"),
        pytest.param(3 * MAX_BODY_BYTES, 2 * MAX_BODY_BYTES, True, id="an-endpoints-larger-limit"),
    ],
)
def test_the_limit_holds_for_decoded_bytes(encoding: str | None, limit: int, size: int, kept: bool) -> None:
    plain = b"x" * size
    raw = gzip.compress(plain) if encoding else plain
    reader = BodyReader(encoding, limit)
    going = True
    for start in range(0, len(raw), 65536):
        going = reader.feed(raw[start : start + 65536])
        if not going:
            break
    assert going is kept
    assert reader.problem is None
    assert len(reader.body) == (size if kept else limit + 1)  # one byte more tells "too large"
