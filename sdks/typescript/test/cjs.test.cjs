// The CommonJS build loads with `require` and offers the same API as the ES module build.

const assert = require("node:assert/strict");
const { test } = require("node:test");

test("require('llmscope') gives the API", async () => {
  const llmscope = require("../dist/cjs/index.js");
  const esm = await import("../dist/esm/index.js");
  const names = (m) =>
    Object.keys(m)
      .filter((k) => k !== "default")
      .sort();
  assert.deepEqual(names(llmscope), names(esm));
  for (const f of [
    "init",
    "wrap",
    "withContext",
    "observe",
    "event",
    "score",
    "flush",
    "shutdown",
  ]) {
    assert.equal(typeof llmscope[f], "function", f);
  }
  const plain = { not: "a client" };
  assert.equal(llmscope.wrap(plain), plain, "anything else is returned as it is");
});
