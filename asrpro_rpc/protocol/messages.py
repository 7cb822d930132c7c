"""JSON-RPC 2.0 wire Structs and the encoders/decoders built once for them."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ..events import RequestId

JSONRPC_VERSION = "2.0"


class Envelope(msgspec.Struct):
    """An incoming message before validation; ``params`` is decoded later, once the method is known."""

    jsonrpc: Any = msgspec.UNSET
    method: Any = msgspec.UNSET
    id: Any = msgspec.UNSET
    params: msgspec.Raw = msgspec.Raw(b"")


class ErrorObject(msgspec.Struct, omit_defaults=True):
    code: int
    message: str
    data: Any = None


class Response(msgspec.Struct, kw_only=True):
    jsonrpc: str = JSONRPC_VERSION
    id: RequestId
    result: Any


class ErrorResponse(msgspec.Struct, kw_only=True):
    jsonrpc: str = JSONRPC_VERSION
    id: RequestId
    error: ErrorObject


class Notification(msgspec.Struct, kw_only=True):
    jsonrpc: str = JSONRPC_VERSION
    method: str
    params: Any


class CancelParams(msgspec.Struct, frozen=True):
    """``$/cancelRequest`` params: the id of the request to cancel."""

    id: int | str


encoder = msgspec.json.Encoder()
envelope_decoder = msgspec.json.Decoder(Envelope)
batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[{]+|[\]}]+|[:,]|[^"\[\]{}:,\s]+', re.S)
_ID_KEY = b'"id"'


def top_level_id(raw: bytes, *, max_tokens: int = 100_000) -> RequestId:
    """The ``id`` of a request too deeply nested to decode, found by a bounded scan of its top level: an
    integer or a string, else None (not found, not a valid id, or past ``max_tokens``)."""
    depth, key = 0, None
    for count, match in enumerate(_TOKEN.finditer(raw)):
        token = match.group()
        if count >= max_tokens or (depth == 1 and key == _ID_KEY and token[:1] in b"[{"):
            return None
        if token[:1] in b"[{":
            depth += len(token)
        elif token[:1] in b"]}":
            depth -= len(token)
        elif depth == 1 and token == b",":
            key = None
        elif depth == 1 and token != b":":
            if key is None:
                key = token
            elif key == _ID_KEY:
                try:
                    value = msgspec.json.decode(token)
                except msgspec.DecodeError:
                    return None
                return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    return None
