import assert from "node:assert/strict";
import { loadConfig } from "../src/config/config.ts";

Deno.test("loadConfig() applies the defaults to an empty environment", () => {
  const result = loadConfig({});
  assert.ok(result.ok);
  const config = result.config;
  assert.equal(config.databaseUrl, null);
  assert.equal(config.dataDir, "./data");
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.port, 8000);
  assert.equal(config.publicUrl, "http://127.0.0.1:8000");
  assert.equal(config.uploadMaxSize, 52428800);
  assert.equal(config.uploadTtlHours, 24);
  assert.equal(config.webhookMaxAttempts, 5);
  assert.equal(config.storageBackend, "local");
  assert.ok(Object.isFrozen(config));
});
