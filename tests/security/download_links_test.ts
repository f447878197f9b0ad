/**
 * Findings 3 and 4 of the security review. A file past `expires_at` still downloaded until the
 * cleanup job ran, and a link signed for the year 33658 verified. Now an expired file is gone to
 * every reader at once (410 by link and for its owner, 404 in the API, no link minted), a link
 * never outlives its file, and a key rotation keeps old links working without signing new ones
 * with the old key.
 */
import assert from "node:assert/strict";
import { createApp } from "../../app.ts";
import type { AppDeps } from "../../src/http/app_env.ts";
import { signDownload } from "../../src/uploads/download_links.ts";
import { Browser } from "../helpers/app.ts";
import {
  createTestUser,
  createUploadFixture,
  type TestUser,
  UPLOAD_TEST_SECRET,
  type UploadFixture,
} from "../helpers/uploads.ts";

const JSON_ACCEPT = { accept: "application/json" };

type FileJson = { id: string; url: string | null; expires_at: string | null };

async function upload(deps: AppDeps, user: TestUser, name: string, text: string) {
  const response = await createApp(deps).request(`/api/v1/files?filename=${name}`, {
    method: "POST",
    headers: user.auth,
    body: text,
  });
  assert.equal(response.status, 201, await response.clone().text());
  return await response.json() as FileJson;
}

async function errorCode(response: Response): Promise<string> {
  const body = await response.json() as { error: { code: string } };
  return body.error.code;
}

async function withFixture(
  label: string,
  env: Record<string, string>,
  fn: (fx: UploadFixture, ada: TestUser) => Promise<void>,
) {
  const fx = await createUploadFixture(label, { env });
  try {
    await fn(fx, await createTestUser(fx.db, "ada@example.test"));
  } finally {
    await fx.close();
  }
}

Deno.test("a file past expires_at is gone to every reader before cleanup runs: 410 by link and for its owner, 404 in the API, no new link", async () => {
  await withFixture("sec_links_expired", {}, async (fx, ada) => {
    const app = createApp(fx.deps);
    const file = await upload(fx.deps, ada, "note.txt", "expiring soon\n");
    assert.ok(file.url, "a stored file has a link");
    const link = new URL(file.url!);
    const before = await app.request(`${link.pathname}${link.search}`);
    assert.equal(await before.text(), "expiring soon\n", "the link works while the file lives");

    // Its expiry passes; the cleanup job has not run (the row is still "stored").
    await fx.db
      .sql`UPDATE upload_file SET expires_at = now() - interval '1 second' WHERE id = ${file.id}`;

    const byLink = await app.request(`${link.pathname}${link.search}`, { headers: JSON_ACCEPT });
    assert.equal(byLink.status, 410, "the link");
    assert.equal(await errorCode(byLink), "gone");
    const byOwner = await app.request(`/files/${file.id}/download`, {
      headers: { ...ada.auth, ...JSON_ACCEPT },
    });
    assert.equal(byOwner.status, 410, "the owner");
    await byOwner.body?.cancel();
    const api = await app.request(`/api/v1/files/${file.id}`, { headers: ada.auth });
    assert.equal(api.status, 404, "the API");
    assert.equal(await errorCode(api), "not_found");
    const list = await app.request("/api/v1/files", { headers: ada.auth });
    const listed = (await list.json() as { files: FileJson[] }).files.map((f) => f.id);
    assert.equal(listed.includes(file.id), false, "the API list leaves it out");
    const [row] = await fx.db.sql<
      { status: string }[]
    >`SELECT status FROM upload_file WHERE id = ${file.id}`;
    assert.equal(row?.status, "stored", "nothing was deleted by the readers");
  });
});

Deno.test("a link is never minted past its file's expiry, and a link signed to outlive its file is refused", async () => {
  await withFixture("sec_links_lifetime", { AWS_QUERYSTRING_EXPIRE: "86400" }, async (fx, ada) => {
    const app = createApp(fx.deps);
    const file = await upload(fx.deps, ada, "short.txt", "lives ten minutes\n");
    await fx.db
      .sql`UPDATE upload_file SET expires_at = now() + interval '10 minutes' WHERE id = ${file.id}`;
    const fresh = await app.request(`/api/v1/files/${file.id}`, { headers: ada.auth });
    const { url } = await fresh.json() as FileJson;
    const expires = Number(new URL(url!).searchParams.get("expires"));
    const fileEnds = Math.floor(Date.now() / 1000) + 600;
    assert.ok(expires <= fileEnds + 1, `link ends ${expires - fileEnds} s after its file`);
    assert.ok(expires >= fileEnds - 5, "but not much before it either");

    // Correctly signed (with the real key), for the year 33658.
    const far = 999_999_999_999;
    const forged = await app.request(
      `/files/${file.id}/download?expires=${far}&sig=${
        signDownload(UPLOAD_TEST_SECRET, file.id, far)
      }`,
      { headers: JSON_ACCEPT },
    );
    assert.equal(forged.status, 403);
    const body = await forged.json() as { error: { code: string; message: string } };
    assert.equal(body.error.code, "link_invalid");
    assert.match(body.error.message, /outlive its file/);
    // One second past the file's end is already too long.
    const [end] = await fx.db.sql<{ at: number }[]>`
      SELECT floor(extract(epoch FROM expires_at))::bigint AS at FROM upload_file WHERE id = ${file.id}`;
    const late = Number(end!.at) + 1;
    const justOver = await app.request(
      `/files/${file.id}/download?expires=${late}&sig=${
        signDownload(UPLOAD_TEST_SECRET, file.id, late)
      }`,
    );
    assert.equal(justOver.status, 403);
    await justOver.body?.cancel();
    const exact = Number(end!.at);
    const atTheEnd = await app.request(
      `/files/${file.id}/download?expires=${exact}&sig=${
        signDownload(UPLOAD_TEST_SECRET, file.id, exact)
      }`,
    );
    assert.equal(await atTheEnd.text(), "lives ten minutes\n", "a link ending with its file works");
  });
});

Deno.test("key rotation: links of PORTAL_SECRET_KEY_PREVIOUS verify, new links use the new key, and without it old links are refused", async () => {
  const OLD = UPLOAD_TEST_SECRET;
  const NEW = "rotated-secret-key-0123456789abcdefghijklmnop";
  await withFixture("sec_links_rotation", {}, async (fx, ada) => {
    const oldLink = new URL((await upload(fx.deps, ada, "kept.txt", "still here\n")).url!);
    const rotated = (previous: string | null): AppDeps => ({
      ...fx.deps,
      secretKey: NEW,
      config: { ...fx.deps.config, secretKey: NEW, secretKeyPrevious: previous },
    });

    const during = createApp(rotated(OLD));
    const viaOld = await during.request(`${oldLink.pathname}${oldLink.search}`);
    assert.equal(await viaOld.text(), "still here\n", "the old key's link verifies");
    const again = await during.request(`/api/v1/files/${oldLink.pathname.split("/")[2]}`, {
      headers: ada.auth,
    });
    const newLink = new URL((await again.json() as FileJson).url!);
    const expires = Number(newLink.searchParams.get("expires"));
    const id = newLink.pathname.split("/")[2]!;
    assert.equal(
      newLink.searchParams.get("sig"),
      signDownload(NEW, id, expires),
      "signed with the new key",
    );

    // The sign-in form signed by the old key still posts during the rotation.
    const browser = new Browser(createApp(fx.deps));
    const token = await browser.loginFormToken();
    const tab = new Browser(during);
    for (const [name, value] of browser.cookies) tab.cookies.set(name, value);
    const signIn = await tab.postForm("/login", {
      email: "ada@example.test",
      password: "correct horse battery",
      csrf_token: token,
    });
    assert.equal(signIn.status, 303, "an old form still signs in");

    const after = createApp(rotated(null));
    const refused = await after.request(`${oldLink.pathname}${oldLink.search}`);
    assert.equal(refused.status, 403, "once the old key is dropped its links stop");
    await refused.body?.cancel();
  });
});
