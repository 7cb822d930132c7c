"""The stdio JSON-RPC core, driven through the real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import msgspec
import pytest

from tests.support.sidecar import Sidecar, repo_root


def _files_left(directory) -> list:
    return [p for p in directory.rglob("*") if p.is_file()]


@pytest.fixture
def sidecar(tmp_path) -> Iterator[Sidecar]:
    process = Sidecar(env={"TMPDIR": str(tmp_path)})
    yield process
    process.kill()


def test_initialize_ping_shutdown_exit(sidecar: Sidecar, tmp_path) -> None:
    info = sidecar.call("initialize", {"client": {"name": "pytest", "version": "1"}})
    assert info["name"] == "asrpro-rpc"
    assert info["protocol_version"]
    assert {"ping", "shutdown", "transcribe.file", "stream.start", "models.load"} <= set(info["methods"])
    assert set(info["capabilities"]["engines"]) >= {"whisper", "nemo", "onnx"}
    assert sidecar.call("ping")["pong"] is True
    assert sidecar.shutdown() == 0
    assert _files_left(tmp_path) == []


def test_requests_after_shutdown_are_refused(sidecar: Sidecar) -> None:
    sidecar.call("shutdown")
    error = sidecar.error("ping")
    assert error["data"]["kind"] == "shutting_down"
    sidecar.notify("exit")
    assert sidecar.process.wait(10) == 0


def test_eof_exits_cleanly_without_shutdown(sidecar: Sidecar, tmp_path) -> None:
    sidecar.call("ping")
    sidecar.close_stdin()
    assert sidecar.process.wait(5) == 1
    assert _files_left(tmp_path) == []


def test_exit_without_shutdown_is_nonzero(sidecar: Sidecar) -> None:
    sidecar.notify("exit")
    assert sidecar.process.wait(5) == 1


def test_sigterm_shuts_down_gracefully(sidecar: Sidecar) -> None:
    slow = sidecar.request("ping", {"delay_s": 30})
    sidecar.call("ping")  # the slow one is running
    sidecar.process.send_signal(signal.SIGTERM)
    assert sidecar.process.wait(5) == 0
    assert sidecar.response(slow)["error"]["code"] == -32800


def test_concurrent_requests_complete_out_of_order(sidecar: Sidecar) -> None:
    slow = sidecar.request("ping", {"delay_s": 1.0})
    fast = sidecar.request("ping")
    first = sidecar.response()
    second = sidecar.response()
    assert [first["id"], second["id"]] == [fast, slow]


def test_cancel_request_answers_minus_32800(sidecar: Sidecar) -> None:
    slow = sidecar.request("ping", {"delay_s": 60})  # the longest: only the cancel can answer it sooner
    sidecar.call("ping")  # the slow one is running
    sidecar.notify("$/cancelRequest", {"id": slow})
    reply = sidecar.response(slow, timeout_s=30)
    assert reply["error"]["code"] == -32800
    assert reply["error"]["data"]["kind"] == "cancelled"
    sidecar.notify("$/cancelRequest", {"id": 12345})  # unknown ids are ignored
    assert sidecar.call("ping")["pong"]


def test_cancel_request_sent_with_an_id_is_answered_null(sidecar: Sidecar) -> None:
    slow = sidecar.request("ping", {"delay_s": 60})
    sidecar.call("ping")  # the slow one is running
    assert sidecar.call("$/cancelRequest", {"id": slow}) is None
    assert sidecar.response(slow)["error"]["code"] == -32800
    sidecar.write(b'[{"jsonrpc":"2.0","id":"c","method":"$/cancelRequest","params":{"id":999}}]\n')
    assert sidecar.next_message() == [{"jsonrpc": "2.0", "id": "c", "result": None}]


def test_batch_and_notifications(sidecar: Sidecar) -> None:
    sidecar.write(
        b'[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"ping"},'
        b'{"jsonrpc":"2.0","id":"b","method":"nope"}, 7]\n'
    )
    replies = sidecar.next_message()
    assert isinstance(replies, list) and len(replies) == 3
    by_id = {r["id"]: r for r in replies}
    assert by_id["a"]["result"]["pong"] is True
    assert by_id["b"]["error"]["code"] == -32601
    assert by_id[None]["error"]["code"] == -32600
    sidecar.write(b'[{"jsonrpc":"2.0","method":"ping"}]\n')  # all notifications: no reply at all
    assert sidecar.call("ping")["pong"]


BAD_INPUTS = [
    (b"{not json", -32700, None),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping"', -32700, None),
    (b"[]", -32600, None),
    (b"42", -32600, None),
    (b'"hello"', -32600, None),
    (b"null", -32600, None),
    (b'{"id":1,"method":"ping"}', -32600, 1),
    (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600, 1),
    (b'{"jsonrpc":"2.0","id":1,"method":5}', -32600, 1),
    (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', -32600, None),
    (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', -32600, None),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":7}', -32600, 1),
    (b'{"jsonrpc":"2.0","id":1,"method":"no.such.method"}', -32601, 1),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"delay_s":"soon"}}', -32602, 1),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"delay_s":-1}}', -32602, 1),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"bogus":1}}', -32602, 1),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2]}', -32602, 1),
    (b'{"jsonrpc":"2.0","id":1,"method":"shutdown","params":{"x":1}}', -32602, 1),
    (b'{"jsonrpc":"2.0","id":"\xff\xfe","method":"ping"}', -32700, None),
    (b"\xff\xfe\xfd", -32700, None),
]


@pytest.mark.parametrize(("line", "code", "reply_id"), BAD_INPUTS)
def test_bad_input_gets_the_right_error(sidecar: Sidecar, line: bytes, code: int, reply_id: object) -> None:
    sidecar.write(line + b"\n")
    reply = sidecar.response()
    assert reply["jsonrpc"] == "2.0"
    assert reply["error"]["code"] == code, reply
    assert reply["id"] == reply_id
    assert reply["error"]["message"]
    assert "Traceback" not in reply["error"]["message"]
    assert sidecar.call("ping")["pong"]


def test_batch_of_junk_answers_each_item(sidecar: Sidecar) -> None:
    sidecar.write(b'[1, "x", null, {"jsonrpc":"2.0"}]\n')
    replies = sidecar.next_message()
    assert [r["error"]["code"] for r in replies] == [-32600] * 4
    assert sidecar.call("ping")["pong"]


def test_unknown_field_error_names_the_field(sidecar: Sidecar) -> None:
    error = sidecar.error("ping", {"dealy_s": 1})
    assert error["code"] == -32602
    assert error["data"]["field"] == "dealy_s"
    assert "dealy_s" in error["message"]


def test_empty_lines_and_whitespace_are_ignored(sidecar: Sidecar) -> None:
    sidecar.write(b"\n\n   \r\n\t\n")
    assert sidecar.call("ping")["pong"]
    assert len(sidecar.raw_lines) == 1


def test_duplicate_inflight_id_is_rejected(sidecar: Sidecar) -> None:
    sidecar.request("ping", {"delay_s": 2}, request_id="same")
    sidecar.request("ping", request_id="same")
    reply = sidecar.response()
    assert reply["error"]["code"] == -32600 and "already in use" in reply["error"]["message"]


def test_huge_line_is_rejected_and_the_process_lives(sidecar: Sidecar) -> None:
    size = 64 * 1024 * 1024 + 10
    chunk = b"x" * (1024 * 1024)
    sidecar.write(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"')
    written = 0
    while written < size:
        sidecar.write(chunk)
        written += len(chunk)
    sidecar.write(b'"}}\n')
    reply = sidecar.response(timeout_s=60)
    assert reply["error"]["code"] == -32600
    assert "too large" in reply["error"]["message"]
    assert sidecar.call("ping")["pong"]


def test_large_line_under_the_limit_is_accepted(sidecar: Sidecar) -> None:
    padding = "y" * (8 * 1024 * 1024)
    error = sidecar.error("ping", {"pad": padding})
    assert error["code"] == -32602  # parsed fully: rejected only for the unknown field


NOISY_SERVER = """
import ctypes, os, sys, threading, time, warnings
import asrpro_rpc.cli.main as cli

def noise():
    libc = ctypes.CDLL(None)
    for _ in range(200):
        print("print noise")
        sys.stdout.write("sys.stdout noise\\n")
        sys.stdout.flush()
        os.write(1, b"fd1 noise from os.write\\n")
        libc.puts(b"libc puts noise")
        libc.fflush(None)
        warnings.warn("a library warning")
        time.sleep(0.005)

threading.Timer(0.5, noise).start()  # while it starts up (fd 1 is guarded first thing) and serves
raise SystemExit(cli.main(["serve"]))
"""


def test_stdout_stays_clean_when_libraries_print() -> None:
    sidecar = Sidecar(argv=[sys.executable, "-c", NOISY_SERVER])
    try:
        during = 0  # pings answered while the libraries were printing
        deadline = time.monotonic() + 60
        while sidecar.stderr_text().count("libc puts noise") < 200:  # until all the noise is out
            assert time.monotonic() < deadline, "the noise never finished"
            assert sidecar.call("ping")["pong"]
            during += "print noise" in sidecar.stderr_text()
        assert sidecar.shutdown() == 0
    finally:
        sidecar.kill()
    sidecar.wait_for_output_end()
    assert during > 0
    for line in sidecar.raw_lines:
        message = msgspec.json.decode(line)
        assert message["jsonrpc"] == "2.0"
    stderr = sidecar.stderr_text()
    assert "fd1 noise" in stderr and "libc puts noise" in stderr and "print noise" in stderr


def test_logs_are_json_lines_on_stderr(sidecar: Sidecar) -> None:
    sidecar.call("ping")
    sidecar.shutdown()
    sidecar.wait_for_output_end()
    records = [msgspec.json.decode(line) for line in sidecar.stderr_lines if line.startswith(b"{")]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


def test_rpc_discover_matches_checked_in_schema(sidecar: Sidecar) -> None:
    document = sidecar.call("rpc.discover")
    checked_in = msgspec.json.decode((repo_root() / "schema" / "openrpc.json").read_bytes())
    assert document == checked_in, "schema/openrpc.json is stale: run `asrpro schema --write`"
    assert document["openrpc"].startswith("1.")
    names = {m["name"] for m in document["methods"]}
    assert {"initialize", "ping", "shutdown", "exit", "rpc.discover"} <= names


def test_startup_imports_no_heavy_packages() -> None:
    code = (
        "import sys, asrpro_rpc.protocol.server, asrpro_rpc.cli.main, asrpro_rpc.system.capabilities as c;"
        "from asrpro_rpc.methods import all_methods; all_methods(); c.probe_capabilities();"
        "heavy = {'torch','nemo','faster_whisper','ctranslate2','av','sounddevice','numpy','onnxruntime'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_call_cli_prints_the_result() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asrpro_rpc", "call", "ping"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert msgspec.json.decode(done.stdout)["pong"] is True
    bad = subprocess.run(
        [sys.executable, "-m", "asrpro_rpc", "call", "nope"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 1 and "-32601" in bad.stderr


def test_version_flag() -> None:
    done = subprocess.run([sys.executable, "-m", "asrpro_rpc", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "asrpro-rpc" in done.stdout


def test_schema_check_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asrpro_rpc", "schema", "--check"], cwd=os.fspath(repo_root())
    )
    assert done.returncode == 0
