"""One live stream's state between the protocol and its worker: a thread-safe queue of pushed audio (the
microphone pushes from its own thread), the decode options, and what has been finalized so far.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import anyio
import msgspec

from asrpro_rpc.audio.pcm import Encoding
from asrpro_rpc.streaming.vad import SAMPLE_RATE_HZ
from asrpro_rpc.transcripts.types import Segment, TranscribeOptions
from asrpro_rpc.transcripts.vocabulary import VocabularyRules

if TYPE_CHECKING:
    import numpy as np

    from asrpro_rpc.audio.capture import InputCapture
    from asrpro_rpc.streaming.processor import StreamProcessor, Utterance

_QUEUED_FINALS = 2


class LiveStream:
    """A stream from ``stream.start`` until its worker ends (stopped, cancelled or failed)."""

    def __init__(
        self,
        stream_id: str,
        model_id: str,
        options: TranscribeOptions,
        *,
        final_options: TranscribeOptions,
        sentence_options: TranscribeOptions | None = None,
        encoding: Encoding,
        poll_s: float | None,
    ) -> None:
        self.id = stream_id
        self.model_id = model_id
        self.options = options
        """Options of the partial re-decodes."""
        self.final_options = final_options
        """Options of the final decodes (a wider beam)."""
        self.sentence_options = sentence_options
        """Options to decode a sentence finished at a pause again with (a file's encoder window), if any."""
        self.encoding = encoding
        self.poll_s = poll_s
        """Set for sources that push from other threads (they can't wake the worker): how often it looks."""
        self.processor: StreamProcessor | None = None
        self.capture: InputCapture | None = None
        """The microphone feeding the stream (None when the host pushes the audio)."""
        self.language: str | None = options.language
        self.rules = VocabularyRules.of(options.vocabulary)
        """The vocabulary's text rules, applied to what the stream reports (decodes see the raw text)."""
        self.segments: list[Segment] = []
        """Final segments as decoded."""
        self.stopping = False
        self.decoding = anyio.Lock()
        """Held while the processor changes (audio fed, a decode applied): a decode lands between feeds."""
        self.interval_decoding = False
        """An interval re-decode is running beside the worker's loop."""
        self.queued_finals = anyio.Semaphore(_QUEUED_FINALS)
        """Taken by each ended utterance until its final is announced: the worker stops feeding audio while
        that many wait (so a backlog shows as unfed audio, and pushes beyond it are refused)."""
        self.pause_decoding: tuple[Utterance, anyio.Event] | None = None
        """The decode asked for at a pause (dictation) running beside the loop, and the event it sets when
        done (the utterance's final waits for it)."""
        self.ready = anyio.Event()
        self.done = anyio.Event()
        self.error: BaseException | None = None
        self.scope = anyio.CancelScope()
        self.warned: set[str] = set()
        self._lock = threading.Lock()
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._wake = anyio.Event()

    # --- audio in (any thread) -----------------------------------------------------------------------
    def add_audio(self, samples: np.ndarray) -> None:
        with self._lock:
            self._pending.append(samples)
            self._pending_samples += len(samples)

    def wake(self) -> None:
        """Called on the event loop after ``add_audio`` or ``stopping``."""
        self._wake.set()

    @property
    def pending_s(self) -> float:
        """Audio received but not yet looked at by the worker (how far behind it is)."""
        return self._pending_samples / SAMPLE_RATE_HZ

    def take_audio(self) -> np.ndarray | None:
        import numpy as np

        with self._lock:
            pending, self._pending, self._pending_samples = self._pending, [], 0
        if not pending:
            return None
        return pending[0] if len(pending) == 1 else np.concatenate(pending)

    async def wait_for_audio(self) -> None:
        with anyio.move_on_after(self.poll_s if self.poll_s is not None else float("inf")):
            await self._wake.wait()
        self._wake = anyio.Event()

    def written(self, segment: Segment) -> Segment:
        """``segment`` as reported: its text through the vocabulary's rules."""
        return msgspec.structs.replace(segment, text=self.rules.apply(segment.text))

    def written_segments(self) -> list[Segment]:
        return [self.written(segment) for segment in self.segments]

    def text(self) -> str:
        """The whole stream's text, through the vocabulary's rules."""
        return self.rules.apply(" ".join(segment.text for segment in self.segments))


class StreamSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``stream.stop`` answers: every final segment, times from the stream's start."""

    stream_id: str
    text: str
    language: str | None
    duration: float
    segments: list[Segment]
    model: str
