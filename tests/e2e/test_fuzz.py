"""Property: no input line can kill the process or put anything but JSON-RPC on stdout."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.sidecar import Sidecar

SAFE_METHODS = ["ping", "initialize", "rpc.discover", "nope", "$/cancelRequest", "models.list", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
near_requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0", 2]), "method": st.sampled_from(SAFE_METHODS)},
    optional={"id": st.integers() | st.text(max_size=5) | st.none() | st.floats(), "params": json_values},
)
lines = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
    json_values.map(msgspec.json.encode),
    near_requests.map(msgspec.json.encode),
    st.lists(near_requests, max_size=4).map(msgspec.json.encode),
)


@pytest.fixture(scope="module")
def fuzz_sidecar() -> Iterator[Sidecar]:
    process = Sidecar(env={"ASRPRO_LOG_LEVEL": "error"})
    yield process
    process.kill()


_probe_ids = itertools.count(1)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(lines, min_size=1, max_size=16))
def test_random_lines_never_break_the_wire(fuzz_sidecar: Sidecar, batch: list[bytes]) -> None:
    fuzz_sidecar.write(b"\n".join(batch) + b"\n")
    probe = f"probe-{next(_probe_ids)}"
    fuzz_sidecar.request("ping", request_id=probe)
    while True:
        message = fuzz_sidecar.next_message(timeout_s=30)
        assert "__unparsable__" not in message, message
        for item in message if isinstance(message, list) else [message]:
            assert item["jsonrpc"] == "2.0"
            assert ("result" in item) ^ ("error" in item) or ("method" in item and "id" not in item)
        if isinstance(message, dict) and message.get("id") == probe:
            assert message["result"]["pong"] is True
            break
    assert fuzz_sidecar.process.poll() is None


DEEP = 100_000
HUGE = "x" * (5 << 20)
LONG_PATH = "/" + "/".join(["d" * 200] * 30)  # 6 KB: over PATH_MAX (4096)
MAX_REPLY_BYTES = 16_000
HOSTILE: list[tuple[str, bytes, int, object]] = [
    # (what, line, error code (0: a result), the reply's id: a deep request's is found by a bounded scan)
    (
        "deep params",
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":' + b"[" * DEEP + b"]" * DEEP + b"}}",
        -32700,
        1,
    ),
    ("deep id", b'{"jsonrpc":"2.0","id":' + b"[" * DEEP + b"]" * DEEP + b',"method":"ping"}', -32700, None),
    ("deep batch", b"[" * DEEP + b"]" * DEEP, -32700, None),
    (
        "deep in a batch",
        b'[{"jsonrpc":"2.0","id":1,"method":' + b"[" * DEEP + b"]" * DEEP + b"}]",
        -32700,
        None,
    ),
    ("huge method", msgspec.json.encode({"jsonrpc": "2.0", "id": 2, "method": HUGE}), -32601, 2),
    (
        "huge model id",
        msgspec.json.encode({"jsonrpc": "2.0", "id": 3, "method": "models.get", "params": {"model": HUGE}}),
        -32001,
        3,
    ),
    (
        "huge stream id",
        msgspec.json.encode(
            {"jsonrpc": "2.0", "id": 4, "method": "stream.stop", "params": {"stream_id": HUGE}}
        ),
        -32014,
        4,
    ),
    (
        "huge path",
        msgspec.json.encode(
            {"jsonrpc": "2.0", "id": 5, "method": "transcribe.file", "params": {"path": "/" + HUGE}}
        ),
        -32602,
        5,
    ),
    (
        "path over PATH_MAX",
        msgspec.json.encode(
            {"jsonrpc": "2.0", "id": 6, "method": "transcribe.file", "params": {"path": LONG_PATH}}
        ),
        -32602,
        6,
    ),
    (
        "huge unknown field",
        msgspec.json.encode({"jsonrpc": "2.0", "id": 7, "method": "ping", "params": {HUGE: 1}}),
        -32602,
        7,
    ),
    ("huge in-flight id", msgspec.json.encode({"jsonrpc": "2.0", "id": HUGE, "method": "ping"}), 0, HUGE),
]


def _answer(sidecar: Sidecar, reply_id: object, code: int) -> dict:
    """The answer to the line just sent (a batch's: the one element of its array). Answers the random
    lines' slow requests send later (in the same module's sidecar) are skipped."""
    while True:
        message = sidecar.next_message()
        if isinstance(message, list):  # a batch answers an array of one
            if len(message) == 1 and message[0].get("id") == reply_id:
                return message[0]
            continue
        if message.get("id", "no id") != reply_id or "method" in message:
            continue
        if reply_id is not None or message.get("error", {}).get("code") == code:
            return message


@pytest.mark.parametrize(
    ("line", "code", "reply_id"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
def test_deep_nesting_and_huge_strings_get_small_answers(
    fuzz_sidecar: Sidecar, line: bytes, code: int, reply_id: object
) -> None:
    """Input at the decoder's limits costs only itself: a stable error, a reply of bounded size, no
    traceback, and ``system.health`` stays small."""
    seen = len(fuzz_sidecar.raw_lines)
    fuzz_sidecar.write(line + b"\n")
    reply = _answer(fuzz_sidecar, reply_id, code)
    assert reply["id"] == reply_id
    reply_bytes = max(len(raw) for raw in fuzz_sidecar.raw_lines[seen:])
    if code:
        assert reply["error"]["code"] == code, reply["error"]
        assert "Traceback" not in reply["error"]["message"]
        assert "RecursionError" not in reply["error"]["message"]
        assert reply_bytes < MAX_REPLY_BYTES, reply_bytes
    else:  # a valid request echoes its own id, and only that
        assert reply["result"]["pong"] is True
    health = fuzz_sidecar.call("system.health")
    assert len(msgspec.json.encode(health)) < 4_000
    assert fuzz_sidecar.process.poll() is None
