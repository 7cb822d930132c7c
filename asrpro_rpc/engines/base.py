"""The engine interface: load a model, transcribe audio with progress and cancellation, unload.

Engines run inside the engine host process (``host_main``); they read 16 kHz mono float32 audio as bounded
windows (``chunking.Audio``, streamed from the decoder) with the shared ``TranscribeOptions``, and return
the shared ``Transcript``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import msgspec

from asrpro_rpc.transcripts.types import Segment, TranscribeOptions, Transcript

if TYPE_CHECKING:
    from asrpro_rpc.engines.chunking import Audio

log = logging.getLogger(__name__)
SegmentSink = Callable[[Segment], None]
"""Receives finished segments while a transcription runs."""
LoadProgress = Callable[[float, str], None]
"""``(fraction 0..1, message)`` while a model loads."""


class LoadSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Which model to load, where from and on what hardware."""

    model_id: str
    model_path: str
    engine: str = "whisper"
    device: str = "auto"
    device_index: int = 0
    compute_type: str | None = None
    cpu_threads: int = 0
    """CPU threads per transcription; 0 uses every core this process may run on."""
    max_concurrency: int = 1
    """Transcriptions the loaded model may run at once (faster-whisper ``num_workers``)."""
    languages: tuple[str, ...] = ()
    """The registry's languages for the model (engines that can't detect a language report these)."""


class LoadInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a load actually chose (it may differ from the request; ``warnings`` say why)."""

    device: str
    compute_type: str
    load_time_s: float
    warnings: list[str] = []
    provider: str | None = None
    """The ONNX Runtime execution provider the sessions run on (ONNX routes only)."""


class Engine(Protocol):
    """One loaded model. ``transcribe`` may be called from several threads at once."""

    def load(self, spec: LoadSpec, progress: LoadProgress) -> LoadInfo: ...

    def transcribe(
        self,
        audio: Audio,
        options: TranscribeOptions,
        on_progress: Callable[[float], None],
        is_cancelled: Callable[[], bool],
        on_segment: SegmentSink | None = None,
    ) -> Transcript:
        """Transcribe ``audio`` window by window; raise ``RequestCancelled`` once ``is_cancelled()``.

        ``on_segment`` receives each finished segment (absolute times, final ids) as soon as the engine
        has it: during decoding for Whisper, after the last window for Parakeet.
        """
        ...

    def unload(self) -> None: ...


def load_done(
    spec: LoadSpec,
    started_s: float,
    *,
    device: str,
    compute_type: str,
    warnings: list[str],
    provider: str | None = None,
) -> LoadInfo:
    """The end of every engine's ``load``: log the warnings, say what was chosen and how long it took
    (``started_s`` from ``time.perf_counter``)."""
    for warning in warnings:
        log.warning(warning, extra={"model_id": spec.model_id})
    return LoadInfo(
        device=device,
        compute_type=compute_type,
        load_time_s=time.perf_counter() - started_s,
        warnings=warnings,
        provider=provider,
    )
