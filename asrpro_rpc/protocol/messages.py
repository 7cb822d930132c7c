"""JSON-RPC 2.0 wire Structs and the encoders/decoders built once for them."""

from __future__ import annotations

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
