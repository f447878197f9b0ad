/**
 * The committed islands bundle (static/islands.js) must be what `deno task bundle` builds from
 * islands/ now: the server embeds that file, so a stale one ships old browser code.
 */
import assert from "node:assert/strict";
import { BUNDLE_PATH, bundleIslands } from "../scripts/bundle_islands.ts";

Deno.test("bundleIslands() output matches the committed static/islands.js", async () => {
  const fresh = await Deno.makeTempFile({ prefix: "portal_islands_", suffix: ".js" });
  try {
    await bundleIslands(fresh);
    const [built, committed] = await Promise.all([
      Deno.readTextFile(fresh),
      Deno.readTextFile(BUNDLE_PATH).catch(() => ""),
    ]);
    assert.ok(built.length > 1000, "the fresh bundle is suspiciously small");
    assert.ok(
      built === committed,
      "static/islands.js is stale or missing: run `deno task bundle` and commit the result",
    );
  } finally {
    await Deno.remove(fresh);
  }
});

Deno.test("bundleIslands() gives the same bytes twice (a deterministic build)", async () => {
  const first = await Deno.makeTempFile({ prefix: "portal_islands_", suffix: ".js" });
  const second = await Deno.makeTempFile({ prefix: "portal_islands_", suffix: ".js" });
  try {
    await bundleIslands(first);
    await bundleIslands(second);
    assert.ok(
      (await Deno.readTextFile(first)) === (await Deno.readTextFile(second)),
      "two builds of the islands differ: the staleness check above cannot work",
    );
  } finally {
    await Deno.remove(first);
    await Deno.remove(second);
  }
});
