"""Reading an answer's body: bounded, and decoded while it is read.

Transports hand over raw bytes: :class:`BodyReader` decodes ``Content-Encoding`` itself, so the
size limit holds for decoded bytes while they are decoded (a small gzip bomb never inflates).
"""

from __future__ import annotations

import zlib
from typing import Any

#: The largest answer body read (decoded) unless an endpoint says otherwise (``Endpoint.max_body``);
#: one byte more is read to tell "too large".
from airflow_provider_plugz._declarations import MAX_BODY_BYTES

#: Bodies are asked for unencoded; a server that encodes anyway gets one layer of these, decoded here.
ACCEPT_ENCODING = "identity"


class BodyReader:
    """Collects an answer's body from the raw bytes a transport reads, decoding as it goes.

    At most one ``Content-Encoding`` of ``gzip``/``deflate`` is decoded, and never more than
    ``limit`` (:data:`MAX_BODY_BYTES` unless the endpoint says otherwise) + 1 decoded bytes are
    produced, whatever the ratio: :meth:`feed`
    returns False once that many are held, and the transport stops reading. Stacked or unknown
    encodings, corrupt data and an encoded stream that ends early leave :attr:`problem` set; the
    body is then empty.
    """

    def __init__(self, content_encoding: str | None, limit: int = MAX_BODY_BYTES) -> None:
        #: The largest decoded body kept (the endpoint's ``max_body``); one byte more says "too large".
        self.limit = limit
        self._problem: str | None = None
        self._fed = False
        self._chunks: list[bytes] = []
        self._size = 0
        self._decoder: Any = None
        self._deflate = False
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if len(codings) > 1:
            self._problem = "it has stacked Content-Encodings, which are refused"
        elif codings and codings[0] in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif codings and codings[0] == "deflate":
            self._decoder, self._deflate = zlib.decompressobj(), True
        elif codings:
            self._problem = "it has an unsupported Content-Encoding"

    @property
    def problem(self) -> str | None:
        """Why the body cannot be used, once the transport has fed all it read (None: fine)."""
        if (
            self._problem is None
            and self._decoder is not None
            and self._fed
            and not self._decoder.eof
            and self._size <= self.limit  # a reader stopped at the limit is "too large" instead
        ):
            return "its encoded body is truncated"
        return self._problem

    @property
    def body(self) -> bytes:
        return b"" if self.problem else b"".join(self._chunks)

    def feed(self, data: bytes) -> bool:
        """Take raw bytes; False means stop reading (over the limit, or unreadable)."""
        if self._problem is not None:
            return False
        self._fed = self._fed or bool(data)
        if self._decoder is None:
            self._keep(data)
        else:
            try:
                self._inflate(data)
            except zlib.error:
                if not (self._deflate and not self._size):
                    self._problem = "its encoded body is corrupt"
                    return False
                # "deflate" without the zlib wrapper, as some servers send it.
                self._decoder, self._deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                return self.feed(data)
        return self._size <= self.limit

    def _inflate(self, data: bytes) -> None:
        while data and self._size <= self.limit and not self._decoder.eof:
            self._keep(self._decoder.decompress(data, self.limit + 1 - self._size))
            data = self._decoder.unconsumed_tail

    def _keep(self, data: bytes) -> None:
        room = self.limit + 1 - self._size
        if data and room > 0:
            self._chunks.append(data[:room])
            self._size += min(len(data), room)
