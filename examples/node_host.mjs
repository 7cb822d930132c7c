// Minimal Node.js / Electron host for asrpro-rpc: no dependencies.
// Usage: node examples/node_host.mjs [AUDIO_FILE]   (ASRPRO_CMD overrides the sidecar command)
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

const [command, ...args] = (process.env.ASRPRO_CMD ?? "asrpro serve").split(" ");
const sidecar = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] }); // stderr = the sidecar's log

let nextId = 1;
const pending = new Map(); // id -> { resolve, reject }

createInterface({ input: sidecar.stdout }).on("line", (line) => {
  const message = JSON.parse(line);
  if (Array.isArray(message)) return; // batch replies: not used here
  if (message.id === undefined) {
    console.log(`notification ${message.method}`, JSON.stringify(message.params));
    return;
  }
  const waiter = pending.get(message.id);
  if (!waiter) return;
  pending.delete(message.id);
  if (message.error) {
    const error = new Error(message.error.message);
    error.code = message.error.code;
    error.kind = message.error.data?.kind;
    waiter.reject(error);
  } else {
    waiter.resolve(message.result);
  }
});

function call(method, params) {
  const id = nextId++;
  sidecar.stdin.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

function notify(method, params) {
  sidecar.stdin.write(JSON.stringify({ jsonrpc: "2.0", method, params }) + "\n");
}

const info = await call("initialize", { client: { name: "node-example", version: "1.0" } });
console.log(`connected to ${info.name} ${info.version} (pid ${info.pid})`);
console.log("ping:", (await call("ping")).pong);

const audio = process.argv[2];
if (audio) {
  try {
    const result = await call("transcribe.file", { path: audio, response_format: "json" });
    console.log("transcript:", result.text);
  } catch (error) {
    console.log(`transcription failed (${error.kind}): ${error.message}`);
  }
}

await call("shutdown");
notify("exit");
sidecar.on("exit", (code) => {
  console.log(`sidecar exited with code ${code}`);
  process.exit(code ?? 1);
});
