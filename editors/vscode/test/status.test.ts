import { strict as assert } from "node:assert";
import { test } from "node:test";

import { parseStatus, StatusController, StatusItem } from "../src/status";

function fakeItem(): StatusItem & { shown: number } {
  return {
    text: "",
    tooltip: undefined,
    command: undefined,
    shown: 0,
    show() {
      this.shown++;
    },
  };
}

test("status item starts visible, in the starting state, bound to the toggle command", () => {
  const item = fakeItem();
  const status = new StatusController(item, "infill.toggle");
  assert.equal(item.shown, 1);
  assert.equal(item.command, "infill.toggle");
  assert.equal(status.current.state, "starting");
  assert.match(item.text, /infill/);
});

test("infill/status notifications drive the item", () => {
  const item = fakeItem();
  const status = new StatusController(item, "infill.toggle");
  assert.equal(status.onNotification({ state: "loading", message: "loading /models/m" }), true);
  assert.match(item.text, /loading~spin/);
  assert.match(String(item.tooltip), /loading the model: loading \/models\/m/);
  status.onNotification({ state: "ready" });
  assert.match(item.text, /sparkle/);
  status.onNotification({ state: "busy" });
  assert.match(item.text, /sync~spin/);
  status.onNotification({ state: "error", message: "CUDA was requested but no CUDA device is available" });
  assert.match(item.text, /error/);
  assert.match(String(item.tooltip), /no CUDA device/);
});

test("unknown status payloads are ignored", () => {
  const item = fakeItem();
  const status = new StatusController(item, "infill.toggle");
  status.onNotification({ state: "ready" });
  const before = item.text;
  for (const bad of [null, "ready", { state: "exploded" }, { message: "x" }, { state: 3 }]) {
    assert.equal(status.onNotification(bad), false);
  }
  assert.equal(item.text, before);
  assert.deepEqual(parseStatus({ state: "busy", message: 5 }), { state: "busy" });
});

test("disabled completions are shown as off", () => {
  const item = fakeItem();
  const status = new StatusController(item, "infill.toggle");
  status.setEnabled(false);
  assert.match(item.text, /\(off\)/);
  status.setEnabled(true);
  assert.doesNotMatch(item.text, /\(off\)/);
});
