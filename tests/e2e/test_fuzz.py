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
