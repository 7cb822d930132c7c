"""Thin RPC fronts over the services, one module per area; ``all_methods`` is the method table."""

from __future__ import annotations

from .base import RpcMethod


def all_methods() -> list[RpcMethod]:
    """The explicit method table, in documentation order."""
    from . import audio, config, downloads, http, lifecycle, models, stream, system, transcribe

    return [
        *lifecycle.METHODS,
        *models.METHODS,
        *downloads.METHODS,
        *transcribe.METHODS,
        *stream.METHODS,
        *audio.METHODS,
        *config.METHODS,
        *system.METHODS,
        *http.METHODS,
    ]
