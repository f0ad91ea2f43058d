// Keeps three copies of the setting defaults equal: package.json (what VS Code shows), src/settings.ts
// (what the extension sends) and the server's ServerSettings (lsp/settings.py).
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { CLIENT_DEFAULTS, SERVER_DEFAULTS } from "../src/settings";
import { EXTENSION_ROOT, python, REPO_ROOT } from "./helpers";

interface Property {
  default: unknown;
}

function packageDefaults(): Record<string, unknown> {
  const pkg = JSON.parse(readFileSync(path.join(EXTENSION_ROOT, "package.json"), "utf8"));
  const properties: Record<string, Property> = pkg.contributes.configuration.properties;
  const out: Record<string, unknown> = {};
  for (const [key, property] of Object.entries(properties)) {
    assert.ok(key.startsWith("infill."), `setting ${key} outside the infill section`);
    out[key.slice("infill.".length)] = property.default;
  }
  return out;
}

test("package.json declares every setting with the extension's default", () => {
  assert.deepEqual(packageDefaults(), { ...SERVER_DEFAULTS, ...CLIENT_DEFAULTS });
});

test("the server's defaults equal the extension's", () => {
  const script = "import json; from lsp.settings import ServerSettings; print(json.dumps(ServerSettings().to_wire()))";
  const out = execFileSync(python(), ["-c", script], { cwd: REPO_ROOT, encoding: "utf8" });
  assert.deepEqual(JSON.parse(out), { ...SERVER_DEFAULTS });
});
