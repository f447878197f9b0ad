/**
 * GET /admin/webhooks: the webhook endpoints with forms to add one, enable or disable it,
 * rotate its secret, send it a test event and delete it. A new secret (after adding or
 * rotating) is rendered once in the POST's answer and never put in a URL.
 */
import { type Context, Hono } from "hono";
import type { AppDeps, AppEnv } from "../../src/http/app_env.ts";
import { renderPage } from "../../components/render.tsx";
import type { Status } from "../../src/http/errors.ts";
import {
  addEndpoint,
  deleteEndpoint,
  disableEndpoint,
  enableEndpoint,
  type EndpointTestResult,
  getEndpoint,
  listEndpoints,
  rotateSecret,
  ROTATION_GRACE_HOURS,
  testEndpoint,
  type WebhookEndpoint,
  WebhookEndpointError,
} from "../../src/webhooks/endpoint_service.ts";
import { AdminSection, type Notice } from "../../components/AdminSection.tsx";
import { PostButton } from "../../components/PostButton.tsx";
import {
  csrfToken,
  notFound,
  noticeFromQuery,
  readAdminForm,
  redirectWithNotice,
  uuidParam,
} from "./admin_input.ts";

const NOTICES: Record<string, (count: number) => Notice> = {
  enabled: () => ({ kind: "ok", text: "Endpoint enabled" }),
  disabled: () => ({
    kind: "ok",
    text: "Endpoint disabled: new events skip it; retry its failed events after enabling it",
  }),
  deleted: () => ({ kind: "ok", text: "Endpoint deleted with its deliveries" }),
};

const MAX_URL = 2048;
const MAX_DESCRIPTION = 500;
// Postgres text refuses NUL; other control characters have no place in a one-line label either.
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/** The add form's fields, kept when the form is shown again with an error. */
interface AddForm {
  url: string;
  eventTypes: string;
  description: string;
}

/** What the page shows once, besides the list. */
interface WebhooksPageProps {
  endpoints: WebhookEndpoint[];
  csrf: string;
  notice: Notice | null;
  /** A secret to show once (after adding or rotating). */
  secret?: { endpoint: WebhookEndpoint; value: string };
  /** The answer of a test event. */
  test?: { endpoint: WebhookEndpoint; result: EndpointTestResult };
  form?: AddForm;
}

/** Routes of the webhook pages (mounted at /admin/webhooks behind requireUser and requireAdmin). */
export function adminWebhookRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  async function page(
    c: Context<AppEnv>,
    props: Omit<WebhooksPageProps, "endpoints" | "csrf">,
    status: Status = 200,
  ): Promise<Response> {
    const endpoints = await listEndpoints(deps);
    return renderPage(c, <WebhooksPage {...props} endpoints={endpoints} csrf={csrfToken(c)} />, {
      title: "Webhooks",
      status,
    });
  }

  async function endpointOr404(c: Context<AppEnv>): Promise<WebhookEndpoint> {
    const id = uuidParam(c, "webhook endpoint");
    const endpoint = await getEndpoint(deps, id);
    if (endpoint === null) throw notFound("webhook endpoint", id);
    return endpoint;
  }

  app.get("/", (c) => page(c, { notice: noticeFromQuery(c, NOTICES) }));

  app.post("/", async (c) => {
    const fields = await readAdminForm(c);
    const form: AddForm = {
      url: (fields.url ?? "").trim(),
      eventTypes: fields.event_types ?? "",
      description: (fields.description ?? "").trim(),
    };
    const refuse = (text: string) => page(c, { notice: { kind: "error", text }, form }, 400);
    if (form.url.length > MAX_URL) {
      return refuse(`Cannot add webhook endpoint: the URL is longer than ${MAX_URL} characters`);
    }
    if (form.description.length > MAX_DESCRIPTION || CONTROL_CHARACTER.test(form.description)) {
      return refuse(
        `Cannot add webhook endpoint: the description must be one line of at most ${MAX_DESCRIPTION} characters`,
      );
    }
    const eventTypes = form.eventTypes.split(",").map((t) => t.trim()).filter((t) => t !== "");
    let endpoint: WebhookEndpoint;
    try {
      endpoint = await addEndpoint(deps, {
        url: form.url,
        eventTypes,
        description: form.description,
      });
    } catch (error) {
      if (error instanceof WebhookEndpointError) return refuse(error.message);
      throw error;
    }
    return page(c, {
      notice: { kind: "ok", text: `Endpoint added: ${endpoint.url}` },
      secret: { endpoint, value: endpoint.secret },
    }, 201);
  });

  app.post("/:id/enable", async (c) => {
    await readAdminForm(c);
    const id = uuidParam(c, "webhook endpoint");
    if ((await enableEndpoint(deps, id)) === null) throw notFound("webhook endpoint", id);
    return redirectWithNotice(c, "/admin/webhooks", "enabled");
  });

  app.post("/:id/disable", async (c) => {
    await readAdminForm(c);
    const id = uuidParam(c, "webhook endpoint");
    if ((await disableEndpoint(deps, id)) === null) throw notFound("webhook endpoint", id);
    return redirectWithNotice(c, "/admin/webhooks", "disabled");
  });

  app.post("/:id/rotate", async (c) => {
    await readAdminForm(c);
    const id = uuidParam(c, "webhook endpoint");
    const endpoint = await rotateSecret(deps, id);
    if (endpoint === null) throw notFound("webhook endpoint", id);
    return await page(c, {
      notice: {
        kind: "ok",
        text: `Secret rotated for ${endpoint.url}: the old secret stays valid for ` +
          `${ROTATION_GRACE_HOURS} hours`,
      },
      secret: { endpoint, value: endpoint.secret },
    });
  });

  app.post("/:id/test", async (c) => {
    await readAdminForm(c);
    const endpoint = await endpointOr404(c);
    const result = await testEndpoint(deps, endpoint.id);
    if (result === null) throw notFound("webhook endpoint", endpoint.id);
    return await page(c, { notice: null, test: { endpoint, result } });
  });

  app.get("/:id/delete", async (c) => {
    const endpoint = await endpointOr404(c);
    return renderPage(
      c,
      <AdminSection title="Delete webhook endpoint" current="webhooks">
        <p>
          Delete <code>{endpoint.url}</code>
          {endpoint.description && <>({endpoint.description})</>}? Its deliveries and attempts are
          deleted with it; events waiting only on it count as delivered.
        </p>
        <PostButton
          action={`/admin/webhooks/${endpoint.id}/delete`}
          csrf={csrfToken(c)}
          label="Delete"
          class="danger"
        />{" "}
        <a href="/admin/webhooks">Cancel</a>
      </AdminSection>,
      { title: "Delete webhook endpoint" },
    );
  });

  app.post("/:id/delete", async (c) => {
    await readAdminForm(c);
    const id = uuidParam(c, "webhook endpoint");
    if (!(await deleteEndpoint(deps, id))) throw notFound("webhook endpoint", id);
    return redirectWithNotice(c, "/admin/webhooks", "deleted");
  });

  return app;
}

function WebhooksPage(props: WebhooksPageProps) {
  const { endpoints, csrf, notice, secret, test, form } = props;
  return (
    <AdminSection title="Webhook endpoints" current="webhooks" notice={notice}>
      {secret && (
        <div class="once" data-endpoint-id={secret.endpoint.id}>
          <p>
            Signing secret of{" "}
            <code>{secret.endpoint.url}</code>. Copy it now: it is not shown again.
          </p>
          <p>
            <code class="secret">{secret.value}</code>
          </p>
        </div>
      )}
      {test && <TestAnswer endpoint={test.endpoint} result={test.result} />}
      {endpoints.length === 0
        ? <p class="muted">No endpoints yet: events are marked delivered with nobody to tell.</p>
        : (
          <table class="admin-table endpoints">
            <thead>
              <tr>
                <th>URL</th>
                <th>Event types</th>
                <th>Active</th>
                <th>Description</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              {endpoints.map((endpoint) => (
                <EndpointRow key={endpoint.id} endpoint={endpoint} csrf={csrf} />
              ))}
            </tbody>
          </table>
        )}
      <h2>Add an endpoint</h2>
      <form method="post" action="/admin/webhooks" class="add-endpoint">
        <input type="hidden" name="csrf_token" value={csrf} />
        <label>
          URL
          <input
            type="text"
            name="url"
            required
            value={form?.url ?? ""}
            placeholder="https://example.com/hooks/portal"
          />
        </label>
        <label>
          Event types <span class="muted">(comma-separated; empty means every type)</span>
          <input
            type="text"
            name="event_types"
            value={form?.eventTypes ?? ""}
            placeholder="file.stored, file.deleted"
          />
        </label>
        <label>
          Description
          <input type="text" name="description" value={form?.description ?? ""} />
        </label>
        <button type="submit">Add endpoint</button>
      </form>
    </AdminSection>
  );
}

function EndpointRow({ endpoint, csrf }: { endpoint: WebhookEndpoint; csrf: string }) {
  const base = `/admin/webhooks/${endpoint.id}`;
  return (
    <tr data-endpoint-id={endpoint.id} data-active={String(endpoint.isActive)}>
      <td>
        <code>{endpoint.url}</code>
      </td>
      <td>
        {endpoint.eventTypes.length === 0
          ? <span class="muted">all</span>
          : endpoint.eventTypes.join(", ")}
      </td>
      <td>
        {endpoint.isActive ? <span class="status status-delivered">active</span> : (
          <>
            <span class="status status-failed">disabled</span>
            {endpoint.disabledReason && <div class="muted small">{endpoint.disabledReason}</div>}
          </>
        )}
      </td>
      <td>{endpoint.description}</td>
      <td class="row-actions">
        {endpoint.isActive
          ? <PostButton action={`${base}/disable`} csrf={csrf} label="Disable" />
          : <PostButton action={`${base}/enable`} csrf={csrf} label="Enable" />}
        <PostButton action={`${base}/rotate`} csrf={csrf} label="Rotate secret" />
        <PostButton action={`${base}/test`} csrf={csrf} label="Send test" />
        <a class="button danger" href={`${base}/delete`}>Delete</a>
      </td>
    </tr>
  );
}

function TestAnswer(
  { endpoint, result }: { endpoint: WebhookEndpoint; result: EndpointTestResult },
) {
  const ok = result.sent && result.error === "";
  return (
    <div class={`test-answer ${ok ? "ok" : "error"}`} role="status">
      <p>
        Test event to <code>{endpoint.url}</code>: {!result.sent
          ? `not sent: ${result.error}`
          : `${result.statusCode ?? "no response"} in ${result.durationMs} ms` +
            (result.error ? `: ${result.error}` : "")}
      </p>
      {result.responseStart && <pre class="payload">{result.responseStart}</pre>}
    </div>
  );
}
