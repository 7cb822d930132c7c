// The official `openai` Node SDK against the shim: node openai_sdk.mjs BASE_URL TOKEN SPEECH.wav
// Prints one JSON report on stdout (the pytest test in test_http_contract.py checks it).
import fs from "node:fs";
import OpenAI, { toFile } from "openai";

const [baseURL, apiKey, speech] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });
const fast = { temperature_fallback: false, beam_size: 1, max_new_tokens: 16, condition_on_previous_text: false };
const audio = () => toFile(fs.readFileSync(speech), "speech.wav", { type: "audio/wav" });

const plain = await client.audio.transcriptions.create({ file: await audio(), model: "tiny", language: "en", ...fast });
const verbose = await client.audio.transcriptions.create({
  file: await audio(),
  model: "tiny",
  language: "en",
  response_format: "verbose_json",
  ...fast,
});
const models = [];
for await (const model of client.models.list()) models.push(model.id);
let status_of_bad_request = null;
try {
  await client.audio.transcriptions.create({ file: await audio(), model: "tiny", timestamp_granularities: ["word"] });
} catch (error) {
  status_of_bad_request = error.status;
}
process.stdout.write(
  JSON.stringify({
    text: plain.text,
    segments: (plain.segments ?? []).length,
    verbose_language: verbose.language,
    models,
    status_of_bad_request,
  }),
);
