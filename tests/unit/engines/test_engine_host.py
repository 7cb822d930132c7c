"""EngineHost: the model in a child process, driven over pipes — real engine, real audio, real signals."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from asrpro_rpc import errors
from asrpro_rpc.engines.base import LoadSpec
from asrpro_rpc.engines.host.client import EngineHost
from asrpro_rpc.transcripts.types import TranscribeOptions, Transcript
from tests.support.models import TINY_FAST
from tests.support.wer import wer

FAST = TranscribeOptions(**TINY_FAST)
JOIN_TIMEOUT_S = 60.0
"""Generous bound that only turns a hang into a failure."""


def _started(tiny_whisper_dir: Path, **host_args: object) -> EngineHost:
    host = EngineHost(**host_args)  # type: ignore[arg-type]
    host.start()
    host.load(
        LoadSpec(model_id="tiny-random", model_path=str(tiny_whisper_dir), max_concurrency=2),
        lambda f, m: None,
    )
    return host


def _transcribe(
    host: EngineHost, path: Path, options: TranscribeOptions = FAST
) -> tuple[Transcript, list[float]]:
    fractions: list[float] = []
    return host.transcribe(str(path), options, fractions.append, threading.Event()), fractions


def _assert_reaped(pid: int) -> None:
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(pid).status()


@pytest.fixture(scope="module")
def host(tiny_whisper_dir: Path) -> Iterator[EngineHost]:
    host = _started(tiny_whisper_dir)
    yield host
    host.close()


class _Background:
    """Runs ``host.transcribe`` in a thread; records the result or the exception and every progress."""

    def __init__(self, host: EngineHost, path: Path, cancel: threading.Event | None = None) -> None:
        self.cancel = cancel or threading.Event()
        self.first_progress = threading.Event()
        self.fractions: list[float] = []
        self.outcome: Transcript | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(host, path), daemon=True)
        self._thread.start()

    def _run(self, host: EngineHost, path: Path) -> None:
        def on_progress(fraction: float) -> None:
            self.fractions.append(fraction)
            self.first_progress.set()

        try:
            self.outcome = host.transcribe(str(path), FAST, on_progress, self.cancel)
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to inspect
            self.outcome = exc

    def wait_for_progress(self) -> None:
        assert self.first_progress.wait(JOIN_TIMEOUT_S), "no progress from the engine host"

    def join(self) -> Transcript | BaseException | None:
        self._thread.join(JOIN_TIMEOUT_S)
        assert not self._thread.is_alive(), "transcribe() hung"
        return self.outcome


def test_load_progress_stages(tiny_whisper_dir: Path) -> None:
    host = EngineHost()
    host.start()
    progress: list[tuple[float, str]] = []
    try:
        info = host.load(
            LoadSpec(model_id="tiny-random", model_path=str(tiny_whisper_dir)),
            lambda f, m: progress.append((f, m)),
        )
        assert host.alive and host.rss_bytes() > 0
    finally:
        host.close()
    assert info.device in ("cpu", "cuda") and info.compute_type
    assert [m for _, m in progress][:2] == ["importing faster-whisper", "loading weights"]
    assert progress[-1][0] == 1.0
    assert not host.alive and host.rss_bytes() == 0
    assert host.pid is not None
    _assert_reaped(host.pid)


def test_transcribe_through_the_host(host: EngineHost, speech_paragraph_wav: Path) -> None:
    options = TranscribeOptions(**TINY_FAST, word_timestamps=True)
    transcript, fractions = _transcribe(host, speech_paragraph_wav, options)
    assert transcript.segments and transcript.words and transcript.model == "tiny-random"
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_concurrent_transcriptions_match_sequential(
    host: EngineHost, speech_wav: Path, speech_paragraph_wav: Path
) -> None:
    expected = {p: _transcribe(host, p)[0] for p in (speech_wav, speech_paragraph_wav)}
    runs = [_Background(host, p) for p in (speech_wav, speech_paragraph_wav, speech_wav)]
    assert [r.join() for r in runs] == [
        expected[speech_wav],
        expected[speech_paragraph_wav],
        expected[speech_wav],
    ]


@pytest.mark.parametrize(
    ("fixture", "error_type", "reason"),
    [("corrupt_audio", errors.AudioUnreadable, None), ("empty_file", errors.AudioUnreadable, "empty_file")],
)
def test_audio_errors_come_back_typed(
    host: EngineHost, request: pytest.FixtureRequest, fixture: str, error_type: type, reason: str | None
) -> None:
    path: Path = request.getfixturevalue(fixture)
    with pytest.raises(error_type) as caught:
        _transcribe(host, path)
    assert str(path) in caught.value.message
    if reason:
        assert caught.value.data["reason"] == reason
    assert host.alive


def test_missing_file(host: EngineHost, tmp_path: Path) -> None:
    with pytest.raises(errors.FileNotFound) as caught:
        _transcribe(host, tmp_path / "nope.wav")
    assert caught.value.data == {"path": str(tmp_path / "nope.wav")}


def test_load_failure_is_typed_and_the_host_survives(tiny_whisper_dir: Path, tmp_path: Path) -> None:
    host = EngineHost()
    host.start()
    try:
        with pytest.raises(errors.ModelLoadFailed, match="does not exist"):
            host.load(LoadSpec(model_id="gone", model_path=str(tmp_path / "gone")), lambda f, m: None)
        assert host.alive
        host.load(LoadSpec(model_id="tiny-random", model_path=str(tiny_whisper_dir)), lambda f, m: None)
    finally:
        host.close()


def test_cancel_mid_file(
    tiny_whisper_dir: Path, long_audio_factory: Callable[[float], Path], speech_wav: Path
) -> None:
    """The design (README, Transcription): a cancel lands between segments, so the child stops the file
    there and stays loaded; only a cancel it can't honour within the grace ends it (the next test). The
    grace here is long so a busy machine can't turn the clean stop into a kill. The file is many batches of
    VAD chunks long (the batched pipeline decodes a whole batch before its first segment arrives)."""
    host = _started(tiny_whisper_dir, cancel_grace_s=JOIN_TIMEOUT_S / 2)
    try:
        pid = host.pid
        run = _Background(host, long_audio_factory(15))
        run.wait_for_progress()
        run.cancel.set()
        outcome = run.join()
        assert isinstance(outcome, errors.RequestCancelled) and "reload" not in outcome.message
        assert max(run.fractions) < 1.0, "the child went on to the end of the file"
        assert host.alive and host.pid == pid
        assert _transcribe(host, speech_wav)[0].segments
        assert host.pid == pid
    finally:
        host.close()


def test_unresponsive_child_is_killed_after_the_cancel_grace(
    tiny_whisper_dir: Path, long_audio_factory: Callable[[float], Path], speech_wav: Path
) -> None:
    host = _started(tiny_whisper_dir, cancel_grace_s=0.2)
    try:
        run = _Background(host, long_audio_factory(15))
        run.wait_for_progress()
        assert host.pid is not None
        os.kill(host.pid, signal.SIGSTOP)  # it can no longer answer the cancel
        run.cancel.set()
        outcome = run.join()
        assert isinstance(outcome, errors.RequestCancelled) and "reload" in outcome.message
        assert not host.alive
        with pytest.raises(errors.EngineCrashed, match="did not stop"):
            _transcribe(host, speech_wav)
    finally:
        host.close()
    _assert_reaped(host.pid)


def test_a_silent_child_is_stalled_then_killed_by_the_watchdog(
    tiny_whisper_dir: Path, long_audio_factory: Callable[[float], Path]
) -> None:
    host = _started(tiny_whisper_dir, watchdog_s=4.0)
    try:
        run = _Background(host, long_audio_factory(15))
        run.wait_for_progress()
        assert host.pid is not None and host.stalled_s is None  # heartbeats keep coming while it works
        os.kill(host.pid, signal.SIGSTOP)  # no crash, no exit: only its heartbeats stop
        outcome = run.join()
        assert type(outcome) is errors.EngineCrashed and "stopped responding" in outcome.message
        assert not host.alive and host.stalled_s is None
    finally:
        host.close()
    _assert_reaped(host.pid)


def test_child_killed_mid_transcription(
    tiny_whisper_dir: Path, long_audio_factory: Callable[[float], Path], speech_wav: Path
) -> None:
    host = _started(tiny_whisper_dir)
    runs = [_Background(host, long_audio_factory(15)) for _ in range(2)]
    runs[0].wait_for_progress()
    assert host.pid is not None
    os.kill(host.pid, signal.SIGKILL)
    for run in runs:
        outcome = run.join()
        assert isinstance(outcome, errors.EngineCrashed)
        assert "SIGKILL" in outcome.message and "reload" in outcome.message
    assert not host.alive
    host.close()
    _assert_reaped(host.pid)
    fresh = _started(tiny_whisper_dir)
    try:
        assert _transcribe(fresh, speech_wav)[0].segments
    finally:
        fresh.close()


def test_close_during_transcription_ends_the_request(
    tiny_whisper_dir: Path, long_audio_factory: Callable[[float], Path]
) -> None:
    host = _started(tiny_whisper_dir)
    run = _Background(host, long_audio_factory(15))
    run.wait_for_progress()
    host.close()
    assert isinstance(run.join(), errors.ShuttingDown)
    assert host.pid is not None
    _assert_reaped(host.pid)
    host.close()  # idempotent


def test_child_keeps_stray_output_off_the_frames(
    tiny_whisper_dir: Path, speech_wav: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    noisy_child = (
        "import os\n"
        "from asrpro_rpc.engines import whisper\n"
        "from asrpro_rpc.engines.host import main as host_main\n"
        "real = whisper.WhisperEngine.transcribe\n"
        "def noisy(self, *args):\n"
        "    print('stray print')\n"
        "    offline = os.environ['HF_HUB_OFFLINE']\n"
        "    os.write(1, f'stray fd1 write HF_HUB_OFFLINE={offline}\\n'.encode())\n"
        "    return real(self, *args)\n"
        "whisper.WhisperEngine.transcribe = noisy\n"
        "host_main.main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    host = _started(tiny_whisper_dir, command=[sys.executable, "-c", noisy_child], env=env)
    try:
        assert _transcribe(host, speech_wav)[0].segments
    finally:
        host.close()
    err = capfd.readouterr().err
    assert "stray print" in err and "stray fd1 write HF_HUB_OFFLINE=1" in err


@pytest.mark.real_weights
def test_base_through_the_host(
    whisper_base_dir: Path, speech_paragraph_wav: Path, speech_paragraph_text: str, speech_wav: Path
) -> None:
    host = EngineHost()
    host.start()
    try:
        host.load(LoadSpec(model_id="whisper-base", model_path=str(whisper_base_dir)), lambda f, m: None)
        transcript, fractions = _transcribe(host, speech_paragraph_wav, TranscribeOptions())
        assert wer(speech_paragraph_text, transcript.text) <= 0.15
        assert transcript.language == "en" and (transcript.language_probability or 0) > 0.5
        assert fractions[-1] == 1.0
        translated, _ = _transcribe(host, speech_wav, TranscribeOptions(task="translate"))
        assert translated.task == "translate" and translated.text
    finally:
        host.close()
