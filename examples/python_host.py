"""Minimal Python host for asrpro-rpc: the standard library only.

Usage: python examples/python_host.py [AUDIO_FILE]   (ASRPRO_CMD overrides the sidecar command)
"""

import itertools
import json
import os
import shlex
import subprocess
import sys

command = shlex.split(os.environ.get("ASRPRO_CMD", "asrpro serve"))
sidecar = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
ids = itertools.count(1)


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(error["message"])
        self.code = error["code"]
        self.kind = (error.get("data") or {}).get("kind")


def call(method, params=None):
    """Send a request and wait for its response, printing notifications on the way."""
    request_id = next(ids)
    message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    sidecar.stdin.write(json.dumps(message) + "\n")
    for line in sidecar.stdout:
        reply = json.loads(line)
        if "id" not in reply:
            print("notification", reply["method"], json.dumps(reply["params"]))
        elif reply["id"] == request_id:
            if "error" in reply:
                raise RpcError(reply["error"])
            return reply["result"]
    raise EOFError("the sidecar exited")


info = call("initialize", {"client": {"name": "python-example", "version": "1.0"}})
print(f"connected to {info['name']} {info['version']} (pid {info['pid']})")
print("ping:", call("ping")["pong"])
if len(sys.argv) > 1:
    try:
        print(
            "transcript:", call("transcribe.file", {"path": sys.argv[1], "response_format": "json"})["text"]
        )
    except RpcError as error:
        print(f"transcription failed ({error.kind}): {error}")
call("shutdown")
sidecar.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "exit"}) + "\n")
sidecar.stdin.close()
print("sidecar exited with code", sidecar.wait())
