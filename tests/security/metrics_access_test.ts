/**
 * Finding 6 of the security review: /metrics was public on the main port. Now the main and the
 * worker port serve it only to `Authorization: Bearer <PORTAL_METRICS_TOKEN>`, and
 * PORTAL_METRICS_PORT gives it a listener of its own, on loopback unless told otherwise, which
 * `portal serve` really opens (and closes on SIGTERM).
 */
import assert from "node:assert/strict";
import { createApp, createMetricsApp, createWorkerApp } from "../../app.ts";
import { freePort } from "../helpers/app.ts";
import { startPortal, waitForStatus } from "../helpers/cli.ts";
import { createTestDatabase } from "../helpers/db.ts";
import { createUploadFixture } from "../helpers/uploads.ts";

const TOKEN = "metrics-token-0123456789abcdef";

Deno.test("/metrics on the main and worker ports: 404 without a configured token, 401 without the right bearer, 200 with it", async () => {
  const bare = await createUploadFixture("sec_metrics_bare");
  const withToken = await createUploadFixture("sec_metrics_token", {
    env: { PORTAL_METRICS_TOKEN: TOKEN },
  });
  try {
    for (const app of [createApp(bare.deps), createWorkerApp(bare.deps)]) {
      const response = await app.request("/metrics");
      assert.equal(response.status, 404);
      const body = await response.json() as { error: { message: string } };
      assert.match(body.error.message, /PORTAL_METRICS_TOKEN.*PORTAL_METRICS_PORT/);
      const health = await app.request("/healthz");
      assert.equal(health.status, 200, "health stays public");
      await health.body?.cancel();
    }
    for (const app of [createApp(withToken.deps), createWorkerApp(withToken.deps)]) {
      for (
        const authorization of [
          undefined,
          "Bearer wrong-token-0123456789ab",
          TOKEN,
          `Basic ${TOKEN}`,
        ]
      ) {
        const response = await app.request("/metrics", {
          headers: authorization === undefined ? {} : { authorization },
        });
        assert.equal(response.status, 401, `authorization ${authorization}`);
        assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer/);
        await response.body?.cancel();
      }
      const ok = await app.request("/metrics", { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(ok.status, 200);
      assert.match(ok.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      await ok.body?.cancel();
    }
    const open = await createMetricsApp(bare.deps).request("/metrics");
    assert.equal(open.status, 200, "the metrics listener needs no token when none is set");
    await open.body?.cancel();
    const asked = await createMetricsApp(withToken.deps).request("/metrics");
    assert.equal(asked.status, 401, "a set token is asked for there too");
    await asked.body?.cancel();
  } finally {
    await bare.close();
    await withToken.close();
  }
});

Deno.test("portal serve with PORTAL_METRICS_PORT opens a loopback metrics listener, and the main port keeps /metrics closed", async () => {
  const testDb = await createTestDatabase("sec_metrics_serve");
  const dataDir = await Deno.makeTempDir({ prefix: "portal-metrics-" });
  const port = freePort();
  const metricsPort = freePort();
  const portal = startPortal(["serve"], {
    env: {
      DATABASE_URL: testDb.url,
      PORTAL_DATA_DIR: dataDir,
      PORTAL_PORT: String(port),
      PORTAL_METRICS_PORT: String(metricsPort),
      PORTAL_SECRET_KEY: "metrics-serve-secret-key-0123456789abcdef",
      PORTAL_JOBS: "off",
    },
  });
  try {
    await waitForStatus(`http://127.0.0.1:${port}/readyz`, { timeoutMs: 60_000 });
    const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(scraped.status, 200);
    assert.match(await scraped.text(), /^portal_outbox_pending_events \d+$/m);
    const closed = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(closed.status, 404);
    await closed.body?.cancel();
    assert.ok(
      portal.stdoutLines.some((line) =>
        line.includes('"msg":"metrics listening"') && line.includes('"host":"127.0.0.1"')
      ),
      "bound to loopback",
    );
  } finally {
    const status = await portal.stop();
    assert.equal(status.code, 0, portal.stderrLines.join("\n"));
    await testDb.drop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  await assert.rejects(fetch(`http://127.0.0.1:${metricsPort}/metrics`), "closed on SIGTERM");
});
