/**
 * GET /admin/files?status=&cursor=: every user's files, newest first, with their owner and a
 * download link for those with bytes (an admin may download any file: SPEC §5 Security).
 */
import { Hono } from "hono";
import { listAllUsers } from "../../src/auth/account_service.ts";
import type { AppDeps, AppEnv } from "../../src/http/app_env.ts";
import { HttpError } from "../../src/http/errors.ts";
import { renderPage } from "../../components/render.tsx";
import { FILE_STATUSES, type FilePage, listVisibleFiles } from "../../src/uploads/file_service.ts";
import { formatBytes } from "../../islands/format.ts";
import { AdminSection } from "../../components/AdminSection.tsx";
import { Time } from "../../components/Time.tsx";
import { enumQuery } from "./admin_input.ts";

const PAGE_SIZE = 100;

/** Routes of the files page (mounted at /admin/files behind requireUser and requireAdmin). */
export function adminFileRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const status = enumQuery(c, "status", FILE_STATUSES);
    const cursor = c.req.query("cursor") || undefined;
    let page: FilePage;
    try {
      page = await listVisibleFiles(deps, {
        viewer: c.get("user")!,
        status,
        limit: PAGE_SIZE,
        cursor,
        includeExpired: true,
      });
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new HttpError(400, "bad_cursor", error.message);
    }
    const owners = new Map((await listAllUsers(deps)).map((user) => [user.id, user.email]));
    const next = page.nextCursor === null ? null : new URLSearchParams({
      ...(status ? { status } : {}),
      cursor: page.nextCursor,
    });
    return renderPage(
      c,
      <AdminSection title="Files" current="files">
        <form method="get" action="/admin/files" class="filters">
          <label>
            Status{" "}
            <select name="status">
              <option value="">any</option>
              {FILE_STATUSES.map((s) => (
                <option key={s} value={s} selected={s === status}>{s}</option>
              ))}
            </select>
          </label>
          <button type="submit">Filter</button>
        </form>
        {page.files.length === 0
          ? <p class="muted">No files match.</p>
          : (
            <table class="admin-table files-table">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Size</th>
                  <th>Type</th>
                  <th>Status</th>
                  <th>Owner</th>
                  <th>Uploaded</th>
                  <th>Expires</th>
                  <th>Error</th>
                </tr>
              </thead>
              <tbody>
                {page.files.map((file) => (
                  <tr key={file.id} data-file-id={file.id} data-status={file.status}>
                    <td>
                      {file.storageKey !== null &&
                          (file.status === "stored" || file.status === "processed")
                        ? <a href={`/files/${file.id}/download`}>{file.originalFilename}</a>
                        : file.originalFilename}
                    </td>
                    <td>{formatBytes(file.sizeBytes)}</td>
                    <td>{file.contentType || <span class="muted">—</span>}</td>
                    <td>
                      <span class={`status status-file-${file.status}`}>{file.status}</span>
                    </td>
                    <td>
                      {file.uploadedBy === null
                        ? <span class="muted">nobody</span>
                        : owners.get(file.uploadedBy) ?? <code>{file.uploadedBy}</code>}
                    </td>
                    <td>
                      <Time at={file.createdAt} />
                    </td>
                    <td>
                      <Time at={file.expiresAt} />
                    </td>
                    <td class="error-text">
                      {file.errorMessage}
                      {typeof file.metadata.request_id === "string" && (
                        <div class="muted">
                          request id <code>{file.metadata.request_id}</code>
                        </div>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        {next && (
          <p>
            <a href={`/admin/files?${next}`}>Older files</a>
          </p>
        )}
      </AdminSection>,
      { title: "Files" },
    );
  });

  return app;
}
