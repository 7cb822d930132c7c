"""The realtime translation: session updates in both shapes to stream params, bad events to errors."""

from __future__ import annotations

import json

import msgspec
import pytest

from asrpro_rpc.http import realtime_events as wire
from asrpro_rpc.http.realtime import Config, RealtimeError, _decode, _envelope, _updated


def update(config: Config, event: dict[str, object]) -> Config:
    data = json.dumps(event).encode()
    decoded = _decode(data, _envelope(data))
    assert isinstance(decoded, wire.SessionUpdate | wire.TranscriptionSessionUpdate)
    return _updated(config, decoded.session)


def test_ga_and_beta_updates_give_the_same_stream() -> None:
    turn = {"type": "server_vad", "threshold": 0.7, "prefix_padding_ms": 100, "silence_duration_ms": 800}
    transcription = {"model": "whisper-1", "language": "fr", "prompt": "Bonjour"}
    ga = update(
        Config(),
        {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {"input": {"transcription": transcription, "turn_detection": turn}},
            },
        },
    )
    beta = update(
        Config(),
        {
            "type": "transcription_session.update",
            "session": {"input_audio_transcription": transcription, "turn_detection": turn},
        },
    )
    assert ga == beta
    params = ga.stream_params()
    assert (params.model, params.language, params.prompt) == ("whisper-1", "fr", "Bonjour")
    assert (params.vad_threshold, params.silence_s, params.speech_pad_s) == (0.7, 0.8, 0.1)
    assert params.encoding == "f32" and ga.rate_hz == 24000


def test_null_turn_detection_and_16_khz_and_what_is_left_unsaid_is_kept() -> None:
    config = update(
        Config(language="en"),
        {
            "type": "session.update",
            "session": {
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None}}
            },
        },
    )
    assert (config.turn_detection, config.rate_hz, config.language) == (None, 16000, "en")
    config = update(
        config, {"type": "transcription_session.update", "session": {"input_audio_format": "pcm16"}}
    )
    assert (config.turn_detection, config.rate_hz) == (None, 24000)
    assert update(config, {"type": "session.update", "session": {"turn_detection": {}}}).turn_detection == (
        wire.TurnDetection()
    )


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "response.create"}, "invalid_value", "type"),
        ({"type": "input_audio_buffer.append"}, "invalid_value", None),
        ({"type": "session.update", "session": {"turn_detection": {"threshold": 2}}}, "invalid_value", None),
        ({"type": "session.update", "session": {"type": "realtime"}}, "invalid_value", "session.type"),
        ({"type": "session.update", "session": {"input_audio_format": "g711_ulaw"}}, "invalid_value", None),
        (
            {"type": "session.update", "session": {"audio": {"input": {"format": {"rate": 44100}}}}},
            "invalid_value",
            "session.audio.input.format",
        ),
        (
            {"type": "session.update", "session": {"turn_detection": {"type": "semantic_vad"}}},
            "invalid_value",
            "session.turn_detection.type",
        ),
    ],
)
def test_bad_events_are_openai_errors(event: dict[str, object], code: str, param: str | None) -> None:
    with pytest.raises(RealtimeError) as caught:
        update(Config(), event)
    assert caught.value.detail.code == code and caught.value.detail.type == "invalid_request_error"
    if param is not None:
        assert caught.value.detail.param == param


def test_not_json_is_an_error_and_the_envelope_survives_it() -> None:
    assert _envelope(b"{nope") == wire.Envelope()
    with pytest.raises(RealtimeError) as caught:
        _decode(b"{nope", wire.Envelope())
    assert caught.value.detail.code == "invalid_json"


def test_server_events_encode_as_openai_sends_them() -> None:
    event = msgspec.to_builtins(wire.Committed(item_id="item_1", previous_item_id=None))
    assert event["type"] == "input_audio_buffer.committed" and event["previous_item_id"] is None
    assert event["event_id"].startswith("event_")
