"""transcribe.file and the models methods end to end: the real sidecar, real engines, real audio."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.models import TINY_FAST as FAST
from tests.support.sidecar import Sidecar, sidecar_env, wait_until_transcribing
from tests.support.wer import wer


@pytest.fixture(scope="module")
def real(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    """A sidecar whose cache holds the real whisper-base and whisper-tiny.en."""
    process = Sidecar(env=sidecar_env(tmp_path_factory.mktemp("real"), models_dir=model_cache))
    process.call("initialize")
    yield process
    process.kill()


@pytest.fixture
def tiny(model_cache: Path, tiny_whisper_dir: Path, start_sidecar: Callable[..., Sidecar]) -> Sidecar:
    """A fresh sidecar with the tiny random Whisper registered as ``tiny``."""
    process = start_sidecar(models_dir=model_cache)
    process.call("models.register", {"id": "tiny", "path": str(tiny_whisper_dir)})
    return process


def _engine_pid(sidecar: Sidecar) -> int | None:
    return sidecar.call("models.status")["pid"]


# --- accuracy with the real weights -------------------------------------------------------------
@pytest.mark.real_weights
def test_base_transcribes_real_speech_accurately(
    real: Sidecar, speech_paragraph_wav: Path, speech_paragraph_text: str
) -> None:
    result = real.call(
        "transcribe.file", {"path": str(speech_paragraph_wav), "model": "whisper-base"}, timeout_s=180
    )
    assert wer(speech_paragraph_text, result["text"]) <= 0.15, result["text"]
    assert result["language"] == "en" and result["language_probability"] > 0.5
    assert result["model"] == "whisper-base" and result["format"] == "verbose_json"
    starts = [s["start"] for s in result["segments"]]
    assert starts == sorted(starts) and result["segments"][-1]["end"] <= result["duration"] + 0.5


@pytest.mark.real_weights
def test_translate_task_on_a_multilingual_model(real: Sidecar, speech_wav: Path) -> None:
    result = real.call(
        "transcribe.file",
        {"path": str(speech_wav), "model": "whisper-base", "task": "translate", "response_format": "json"},
    )
    assert result["task"] == "translate"
    assert "door" in result["text"].lower()


@pytest.mark.real_weights
def test_translate_on_english_only_model_is_a_clear_error(real: Sidecar, speech_wav: Path) -> None:
    error = real.error(
        "transcribe.file", {"path": str(speech_wav), "model": "whisper-tiny.en", "task": "translate"}
    )
    assert error["code"] == -32602 and "English-only" in error["message"]


@pytest.mark.real_weights
@pytest.mark.parametrize("fixture", ["speech_mp3", "speech_video", "speech_wav"])
def test_containers_transcribe(real: Sidecar, request: pytest.FixtureRequest, fixture: str) -> None:
    path = request.getfixturevalue(fixture)
    result = real.call(
        "transcribe.file", {"path": str(path), "model": "whisper-tiny.en", "response_format": "json"}
    )
    assert wer("Please open the door and turn on the lights in the kitchen.", result["text"]) <= 0.2


@pytest.mark.real_weights
def test_every_response_format(real: Sidecar, speech_wav: Path) -> None:
    def run(response_format: str, **extra: object) -> dict:
        return real.call(
            "transcribe.file",
            {
                "path": str(speech_wav),
                "model": "whisper-tiny.en",
                "response_format": response_format,
                **extra,
            },
        )

    assert set(run("json")) >= {"text", "language", "duration", "model"}
    verbose = run("verbose_json", timestamp_granularities=["segment", "word"])
    words = verbose["words"]
    assert [w["word"].strip(" .") for w in words][:3] == ["Please", "open", "the"]
    assert all(w["start"] <= w["end"] for w in words)
    assert {
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    } <= set(verbose["segments"][0])
    assert "segments" not in run("json")
    assert run("text")["content"].strip() == verbose["text"]
    srt = run("srt")["content"]
    assert srt.startswith("1\n00:00:0") and " --> " in srt
    vtt = run("vtt")["content"]
    assert vtt.startswith("WEBVTT\n\n") and "00:00:0" in vtt


@pytest.mark.real_weights
def test_progress_notifications_end_with_done(real: Sidecar, speech_paragraph_wav: Path) -> None:
    real.notifications.clear()
    request_id = real.request(
        "transcribe.file", {"path": str(speech_paragraph_wav), "model": "whisper-tiny.en", "file_id": "para"}
    )
    assert "result" in real.response(request_id, timeout_s=120)
    progress = [
        n["params"]
        for n in real.notifications
        if n["method"] == "transcription.progress" and n["params"]["request_id"] == request_id
    ]
    values = [p["progress"] for p in progress]
    assert values == sorted(values) and values[-1] == 1.0 and progress[-1]["stage"] == "done"
    assert values.count(1.0) == 1
    assert all(p["file_id"] == "para" for p in progress)
    assert any(p["stage"] == "transcribing" and 0 < p["progress"] < 1 for p in progress)


@pytest.mark.real_weights
def test_segment_notifications_arrive_before_the_result(real: Sidecar, speech_paragraph_wav: Path) -> None:
    real.notifications.clear()
    params = {"path": str(speech_paragraph_wav), "model": "whisper-tiny.en", "segment_notifications": True}
    request_id = real.request("transcribe.file", params)
    result = real.response(request_id, timeout_s=120)["result"]
    announced = [
        n["params"]
        for n in real.notifications
        if n["method"] == "transcription.segment" and n["params"]["request_id"] == request_id
    ]
    assert len(result["segments"]) >= 2
    assert [a["segment"] for a in announced] == result["segments"]
    assert all(a["file_id"] == str(speech_paragraph_wav) for a in announced)


@pytest.mark.real_weights
def test_a_long_file_is_batched_with_words_progress_and_segments(
    real: Sidecar, long_paragraph_wav: Path, speech_paragraph_text: str
) -> None:
    """Over 30 s the default is the batched pipeline (one segment per VAD chunk of up to 30 s, not one per
    sentence); word timestamps, progress and segment notifications come through it as they do sequentially."""
    real.notifications.clear()
    params = {
        "path": str(long_paragraph_wav),
        "model": "whisper-tiny.en",
        "timestamp_granularities": ["segment", "word"],
        "segment_notifications": True,
    }
    request_id = real.request("transcribe.file", params)
    result = real.response(request_id, timeout_s=300)["result"]
    sequential = real.call("transcribe.file", {**params, "batch_size": 1}, timeout_s=300)
    reference = " ".join([speech_paragraph_text] * 3)
    assert wer(reference, result["text"]) <= 0.15, result["text"]
    assert len(result["segments"]) < len(sequential["segments"]) / 2, (result, sequential)

    def sent(method: str) -> list[dict]:
        return [
            n["params"]
            for n in real.notifications
            if n["method"] == method and n["params"]["request_id"] == request_id
        ]

    assert [n["segment"] for n in sent("transcription.segment")] == result["segments"]
    progress = [n["progress"] for n in sent("transcription.progress")]
    assert progress == sorted(progress) and progress[-1] == 1.0 and any(0 < p < 1 for p in progress)
    words = result["words"]
    assert len(words) >= 0.8 * len(reference.split())
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert all(0 <= w["start"] <= w["end"] <= result["duration"] + 0.1 for w in words)


# --- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("corrupt_audio", "audio_unreadable"),
        ("empty_file", "audio_unreadable"),
        ("not_audio", "audio_unreadable"),
        ("video_only", "audio_unreadable"),
    ],
)
def test_unreadable_inputs(real: Sidecar, request: pytest.FixtureRequest, fixture: str, kind: str) -> None:
    path = request.getfixturevalue(fixture)
    error = real.error("transcribe.file", {"path": str(path), "model": "whisper-tiny.en"})
    assert error["data"]["kind"] == kind, error
    assert str(path.name) in error["message"] or "empty" in error["message"]


def test_audio_over_the_duration_setting_is_refused_naming_it(
    tiny: Sidecar, speech_wav: Path, lying_rate_wav: Callable[[int], Path]
) -> None:
    params = {"path": str(speech_wav), "model": "tiny", **FAST}
    tiny.call("config.set", {"values": {"model": {"max_audio_duration_s": 2}}})
    error = tiny.error("transcribe.file", params)
    assert error["code"] == -32005 and error["data"]["reason"] == "too_long", error
    assert "model.max_audio_duration_s" in error["message"] and error["data"]["max_duration_s"] == 2
    tiny.call("config.set", {"values": {"model": {"max_audio_duration_s": 60}}})
    assert tiny.call("transcribe.file", params)["duration"] > 3
    one_hz = tiny.error("transcribe.file", {**params, "path": str(lying_rate_wav(1))})
    assert one_hz["data"]["reason"] == "sample_rate" and "1 Hz" in one_hz["message"]


def test_path_errors(real: Sidecar, tmp_path: Path) -> None:
    missing = real.error("transcribe.file", {"path": str(tmp_path / "nope.wav")})
    assert missing["data"]["kind"] == "file_not_found" and "nope.wav" in missing["message"]
    directory = real.error("transcribe.file", {"path": str(tmp_path)})
    assert directory["data"]["kind"] == "audio_unreadable" and "directory" in directory["message"]
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for special, what in ((fifo, "a FIFO"), (Path("/dev/zero"), "a character device")):
        error = real.error("transcribe.file", {"path": str(special)})
        assert error["data"]["reason"] == "not_a_regular_file" and what in error["message"], error
    empty = real.error("transcribe.file", {"path": ""})
    assert empty["code"] == -32602 and "path is empty" in empty["message"]


def test_model_errors(real: Sidecar, speech_wav: Path) -> None:
    unknown = real.error("transcribe.file", {"path": str(speech_wav), "model": "whisper-bsae"})
    assert unknown["data"]["kind"] == "model_not_found" and "whisper-base" in unknown["message"]
    absent = real.error("models.load", {"model": "whisper-small"})
    assert absent["data"]["kind"] == "model_not_downloaded"
    bad_option = real.error("transcribe.file", {"path": str(speech_wav), "beam_size": 0})
    assert bad_option["code"] == -32602 and "beam_size" in bad_option["message"]


# --- the model manager through the wire ---------------------------------------------------------
def test_models_list_reports_state(tiny: Sidecar) -> None:
    models = {m["id"]: m for m in tiny.call("models.list")}
    assert {"whisper-medium-onnx", "parakeet-tdt-0.6b", "parakeet-tdt-1.1b", "whisper-large-v3"} <= set(
        models
    )
    assert models["whisper-base"]["available"] and models["whisper-base"]["selected"]
    assert models["tiny"]["user"] and not models["tiny"]["ready"]
    tiny.call("models.load", {"model": "tiny"})
    assert tiny.call("models.get", {"model": "tiny"})["ready"]
    assert any(n["method"] == "model.progress" and n["params"]["progress"] == 1.0 for n in tiny.notifications)
    selected = tiny.call("models.select", {"model": "tiny"})
    assert selected["selected"] and tiny.call("models.get", {"model": "whisper-1"})["id"] == "tiny"


def test_switching_ends_the_old_engine(tiny: Sidecar, speech_wav: Path) -> None:
    tiny.call("models.load", {"model": "tiny"})
    first = _engine_pid(tiny)
    tiny.call("models.load", {"model": "whisper-tiny.en"})
    second = _engine_pid(tiny)
    assert first != second and not psutil.pid_exists(first) or psutil.Process(first).status() == "zombie"
    assert tiny.call("models.status")["model_id"] == "whisper-tiny.en"


def test_concurrent_transcriptions_and_ping_stay_responsive(tiny: Sidecar, speech_wav: Path) -> None:
    params = {"path": str(speech_wav), "model": "tiny", "response_format": "json", **FAST}
    ids = [tiny.request("transcribe.file", params) for _ in range(3)]
    assert tiny.call("ping")["pong"]
    for request_id in ids:
        assert "result" in tiny.response(request_id, timeout_s=120)


def test_cancel_mid_file(tiny: Sidecar, long_audio_factory) -> None:
    """The design (README): a cancel lands between segments, so the engine stops the file there and
    stays loaded; only a cancel it can't honour within 3 s ends the engine process."""
    long_file = long_audio_factory(5.0)
    tiny.call("models.load", {"model": "tiny"})
    pid = _engine_pid(tiny)
    request_id = tiny.request("transcribe.file", {"path": str(long_file), "model": "tiny", **FAST})
    wait_until_transcribing(tiny, request_id)
    tiny.notify("$/cancelRequest", {"id": request_id})
    reply = tiny.response(request_id, timeout_s=60)
    assert reply["error"]["code"] == -32800 and "reload" not in reply["error"]["message"], reply
    assert _engine_pid(tiny) == pid  # a clean stop: the same engine process, still loaded
    assert tiny.call("models.status")["state"] == "loaded"
    assert tiny.call(
        "transcribe.file",
        {
            "path": str(long_file),
            "model": "tiny",
            "response_format": "json",
            **FAST,
            "vad": {"max_speech_duration_s": 5},
        },
        timeout_s=300,
    )


def test_engine_crash_costs_one_request(tiny: Sidecar, long_audio_factory, speech_wav: Path) -> None:
    long_file = long_audio_factory(3.0)
    tiny.call("models.load", {"model": "tiny"})
    pid = _engine_pid(tiny)
    request_id = tiny.request("transcribe.file", {"path": str(long_file), "model": "tiny", **FAST})
    wait_until_transcribing(tiny, request_id)
    os.kill(pid, signal.SIGKILL)
    reply = tiny.response(request_id, timeout_s=30)
    assert reply["error"]["data"]["kind"] == "engine_crashed", reply
    assert tiny.call("ping")["pong"]
    assert tiny.call("system.health")["last_error"]["kind"] == "engine_crashed"
    again = tiny.call("transcribe.file", {"path": str(speech_wav), "model": "tiny", **FAST})
    assert again["model"] == "tiny" and _engine_pid(tiny) != pid


def test_unload_returns_memory_to_idle(tiny: Sidecar, speech_wav: Path) -> None:
    tiny.call(
        "transcribe.file", {"path": str(speech_wav), "model": "tiny", **FAST}
    )  # warm the sidecar itself
    tiny.call("models.unload")
    idle = tiny.tree_rss_bytes()
    tiny.call("models.load", {"model": "whisper-tiny.en"})
    tiny.call("transcribe.file", {"path": str(speech_wav), "model": "whisper-tiny.en"})
    loaded = tiny.tree_rss_bytes()
    assert tiny.call("models.unload") == {"unloaded": True}
    assert tiny.call("models.status")["state"] == "unloaded"
    after = tiny.tree_rss_bytes()
    assert loaded - idle > 50_000_000
    assert abs(after - idle) <= 10 * 1024 * 1024, (idle, loaded, after)
    assert tiny.call("models.unload") == {"unloaded": False}


def _peak_engine_rss(sidecar: Sidecar, path: Path, **options: object) -> tuple[dict, int, int]:
    """Transcribe ``path`` on a fresh engine process (no allocator history from earlier files); return the
    reply (result or error), and the engine's peak resident memory as the kernel counted it (VmHWM: no
    sampling misses) once the model was loaded and after the transcription."""
    sidecar.call("models.unload")
    sidecar.call("models.load", {"model": "tiny"})
    loaded = _engine_peak_bytes(sidecar)
    params = {"path": str(path), "model": "tiny", "response_format": "json", **FAST, **options}
    reply = sidecar.response(sidecar.request("transcribe.file", params), timeout_s=600)
    return reply, loaded, _engine_peak_bytes(sidecar)


def _engine_peak_bytes(sidecar: Sidecar) -> int:
    engines = psutil.Process(sidecar.process.pid).children(recursive=True)
    assert engines, "the engine host should be running with the model loaded"
    return sum(_high_water_mark_bytes(engine.pid) for engine in engines)


def _high_water_mark_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kilobytes) * 1024


@pytest.mark.slow
def test_thirty_minute_file_keeps_memory_bounded(tiny: Sidecar, long_audio_factory) -> None:
    """Decoding streams: the engine holds the window it transcribes and the one being decoded (300 s, 19 MB
    each), never the file, so its peak does not grow with the audio. 10, 30 and 60 minutes of speech peak
    within 50 MB of each other (measured, batched: 364, 374, 378 MB); holding the samples would add 77 MB
    from 10 to 30 minutes and 192 MB to 60, and features of the whole file far more."""
    sidecar_rss = psutil.Process(tiny.process.pid).memory_info().rss
    peaks = {}
    for minutes in (10, 30, 60):
        reply, _, peaks[minutes] = _peak_engine_rss(tiny, long_audio_factory(float(minutes)))
        assert reply["result"]["duration"] > (minutes - 1) * 60, reply
    megabytes = {minutes: round(peak / 2**20) for minutes, peak in peaks.items()}
    print(f"engine peak RSS (VmHWM) by minutes of speech: {megabytes} MB")
    assert max(peaks.values()) - min(peaks.values()) < 50 * 2**20, megabytes
    assert psutil.Process(tiny.process.pid).memory_info().rss - sidecar_rss < 30 * 1024 * 1024


@pytest.mark.slow
def test_engine_memory_is_flat_whatever_the_file_claims(
    tiny: Sidecar, lying_rate_wav: Callable[[int], Path], silence_flac_factory: Callable[[float], Path]
) -> None:
    """A 137 KB WAV claiming 1 Hz (once 4.9 GB) or 8 Hz is refused from its header (reason ``sample_rate``)
    without the engine's peak moving 10 MB past its loaded size; 1 h and 3 h of silent FLAC (once 633 MB and
    1.2 GB) stream through, reporting progress as they go, and peak within 40 MB of each other (measured:
    within 5 MB; the first transcription's fixed working set, VAD and encoder buffers, is the rest)."""
    growth, peaks = {}, {}
    for rate_hz in (1, 8):
        reply, loaded, peak = _peak_engine_rss(tiny, lying_rate_wav(rate_hz))
        assert reply["error"]["data"]["reason"] == "sample_rate", reply
        growth[f"{rate_hz} Hz WAV"] = peak - loaded
    for hours in (1, 3):
        tiny.notifications.clear()
        reply, loaded, peaks[hours] = _peak_engine_rss(tiny, silence_flac_factory(hours), vad_filter=True)
        assert reply["result"]["duration"] == pytest.approx(hours * 3600), reply
        fractions = [
            n["params"]["progress"]
            for n in tiny.notifications
            if n["method"] == "transcription.progress" and n["params"]["stage"] == "transcribing"
        ]
        assert len({f for f in fractions if 0 < f < 1}) >= 5 * hours, fractions  # not stuck at 0
        growth[f"{hours} h silence"] = peaks[hours] - loaded
    megabytes = {name: round(b / 2**20) for name, b in growth.items()}
    print(f"engine peak RSS (VmHWM) beyond the loaded model: {megabytes} MB; peaks {peaks}")
    assert growth["1 Hz WAV"] < 10 * 2**20 and growth["8 Hz WAV"] < 10 * 2**20, megabytes
    assert abs(peaks[3] - peaks[1]) < 40 * 2**20, megabytes
