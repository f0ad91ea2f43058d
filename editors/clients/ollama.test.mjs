// The published `ollama` npm client (as Continue's and other editors' Ollama providers use the protocol) and a
// plain OpenAI streaming request against a real `infill serve --http` with an API key.
// Needs INFILL_PYTHON (a Python with the project installed) and INFILL_TEST_X_MODEL (the tiny model that
// fills "xxxx"); scripts/test_editors.sh sets both.
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ollama } from "ollama";

const KEY = "team-key";
const READY_MS = 240_000; // Python, torch and the model on a busy 2-core machine
const PREFIX = "def scale(values):\n    total = ";
const SUFFIX = "\n    return total\n";
let server;
let host;

before(
  async () => {
    const python = process.env.INFILL_PYTHON ?? "python";
    const model = process.env.INFILL_TEST_X_MODEL;
    assert.ok(model, "INFILL_TEST_X_MODEL must name the tiny x model");
    const args = ["-m", "infill_cli.main", "serve", "--http", "--port", "0", "--device", "cpu"];
    server = spawn(python, [...args, "--model", model, "--api-key", KEY], {
      env: { ...process.env, OMP_NUM_THREADS: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    host = await new Promise((resolve, reject) => {
      let port = null;
      let log = "";
      server.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
      server.stderr.setEncoding("utf8").on("data", (text) => {
        log += text;
        port ??= log.match(/running on http:\/\/[\d.]+:(\d+)/)?.[1] ?? null;
        if (port && log.includes("model ready")) resolve(`http://127.0.0.1:${port}`);
      });
    });
  },
  { timeout: READY_MS },
);

after(() => server?.kill());

const client = () => new Ollama({ host, headers: { Authorization: `Bearer ${KEY}` } });

test("list and show: one model whose template enables fill-in-the-middle", async () => {
  const { models } = await client().list();
  assert.equal(models.length, 1);
  const shown = await client().show({ model: models[0].name });
  assert.match(shown.template, /\.Suffix/);
});

test("generate with a suffix streams newline-delimited JSON ending with done", async () => {
  const parts = [];
  const stream = await client().generate({
    model: "qwen2.5-coder:1.5b",
    prompt: PREFIX,
    suffix: SUFFIX,
    stream: true,
    options: { temperature: 0.2, num_predict: 8, stop: ["\n\n"] },
  });
  for await (const part of stream) parts.push(part);
  assert.ok(parts.length >= 1);
  assert.equal(parts.at(-1).done, true);
  assert.match(parts.map((part) => part.response).join(""), /^x+$/);
});

test("a raw prompt in a FIM template is split into prefix and suffix", async () => {
  const answer = await client().generate({
    model: "any",
    prompt: `<|fim_prefix|>${PREFIX}<|fim_suffix|>${SUFFIX}<|fim_middle|>`,
    raw: true,
    stream: false,
  });
  assert.equal(answer.done, true);
  assert.match(answer.response, /^x+$/);
});

test("a wrong key is a 401 the client reports", async () => {
  const wrong = new Ollama({ host, headers: { Authorization: "Bearer nope" } });
  await assert.rejects(wrong.list(), (error) => error.status_code === 401 && /API key/.test(error.message));
});

test("OpenAI /v1/completions streams server-sent events ending with [DONE], no pings", async () => {
  const response = await fetch(`${host}/v1/completions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ model: "x", prompt: PREFIX, suffix: SUFFIX, max_tokens: 8, stream: true }),
  });
  assert.equal(response.status, 200);
  const text = await response.text();
  assert.ok(!text.includes(": ping"));
  const events = text.split("\n\n").filter(Boolean);
  assert.equal(events.at(-1), "data: [DONE]");
  const chunks = events.slice(0, -1).map((event) => JSON.parse(event.replace(/^data: /, "")));
  assert.match(chunks.map((chunk) => chunk.choices[0].text).join(""), /^x+$/);
});
