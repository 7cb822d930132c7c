"""The OpenRPC 1.3 document, generated from the method table and the Structs' JSON schemas.

``schema/openrpc.json`` is this document checked in; ``asrpro schema --write`` regenerates it and a test
fails when they differ. The text must not depend on library versions (msgspec 0.18 keeps docstrings'
indentation, newer releases clean it; key order and JSON formatting are msgspec's), so the document is
normalised here: descriptions cleaned with ``inspect.cleandoc``, union alternatives sorted, ``propertyNames``
(object-key constraints, which msgspec 0.18 leaves out) dropped, and the text rendered by the standard
library's ``json`` with sorted keys.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import msgspec

from .. import PROTOCOL_VERSION, __version__
from ..audio.notifications import AUDIO_NOTIFICATIONS
from ..errors import ERROR_TYPES
from ..events import NOTIFICATIONS as CORE_NOTIFICATIONS
from .base import RpcMethod

NOTIFICATIONS = CORE_NOTIFICATIONS + AUDIO_NOTIFICATIONS
"""Every server → host notification: (method, payload Struct, summary)."""
REF_TEMPLATE = "#/components/schemas/{name}"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema" / "openrpc.json"


def _params(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    """Content descriptors for a params Struct: one per field, required ones first."""
    target = components[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
    required = set(target.get("required", []))
    descriptors = [
        {"name": name, "required": name in required, "schema": field_schema}
        for name, field_schema in target.get("properties", {}).items()
    ]
    return sorted(descriptors, key=lambda d: not d["required"])


def _normalised(node: Any) -> Any:
    """``node`` with descriptions cleaned as Python 3.13 cleans docstrings and ``anyOf`` in a fixed order."""
    if isinstance(node, dict):
        cleaned = {}
        for key, value in node.items():
            if key == "propertyNames":  # msgspec 0.18 omits object-key constraints (still enforced)
                continue
            if key == "description" and isinstance(value, str):
                cleaned[key] = inspect.cleandoc(value)
            elif key == "anyOf":
                alternatives = [_normalised(item) for item in value]
                cleaned[key] = sorted(alternatives, key=lambda item: json.dumps(item, sort_keys=True))
            else:
                cleaned[key] = _normalised(value)
        return cleaned
    if isinstance(node, list):
        return [_normalised(item) for item in node]
    return node


def build_document(methods: list[RpcMethod]) -> dict[str, Any]:
    """The OpenRPC document for ``methods`` (deterministic: same code → same bytes)."""
    types: list[Any] = []
    for method in methods:
        types.append(method.params_type or Any)  # Any: no params, no component
        types.append(method.result_type)
    types.extend(payload for _, payload, _ in NOTIFICATIONS)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    schemas = list(schemas)
    error_index = {e.kind: e for e in ERROR_TYPES}
    rendered = []
    for index, method in enumerate(methods):
        params_schema, result_schema = schemas[2 * index], schemas[2 * index + 1]
        entry: dict[str, Any] = {
            "name": method.name,
            "summary": method.summary,
            "paramStructure": "by-name",
            "params": _params(params_schema, components) if method.params_type else [],
        }
        if method.name != "exit":
            entry["result"] = {"name": f"{method.name}.result", "schema": result_schema}
        if method.errors:
            entry["errors"] = [
                {"code": error_index[kind].code, "message": kind, "data": {"kind": kind}}
                for kind in method.errors
            ]
        rendered.append(entry)
    notification_schemas = schemas[2 * len(methods) :]
    document = {
        "openrpc": "1.3.2",
        "info": {
            "title": "asrpro-rpc",
            "version": __version__,
            "description": "Local speech-to-text sidecar: line-delimited JSON-RPC 2.0 over stdin/stdout. "
            f"Protocol version {PROTOCOL_VERSION}.",
            "license": {"name": "MIT"},
        },
        "methods": rendered,
        "components": {
            "schemas": components,
            "errors": {
                e.kind: {"code": e.code, "message": e.kind, "data": {"kind": e.kind}} for e in ERROR_TYPES
            },
        },
        "x-notifications": [
            {"name": name, "summary": summary, "params": schema}
            for (name, _, summary), schema in zip(NOTIFICATIONS, notification_schemas, strict=True)
        ],
    }
    return _normalised(document)


def render(methods: list[RpcMethod]) -> str:
    """The document as the exact text checked in at ``schema/openrpc.json``."""
    return json.dumps(build_document(methods), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
