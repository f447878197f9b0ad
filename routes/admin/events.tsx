/**
 * GET /admin/events: recent outbox events, filtered by status and type. GET /admin/events/:id:
 * one event with its payload, deliveries and attempts. POST /admin/events/:id/retry and
 * /admin/events/retry-failed: start failed deliveries again from attempt 0 (SPEC §5 Delivery).
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "../../src/http/app_env.ts";
import { HttpError } from "../../src/http/errors.ts";
import { renderPage } from "../../components/render.tsx";
import {
  type DeliveryStatus,
  type EventDetail,
  getEventDetail,
  listOutboxEvents,
  type OutboxEventSummary,
  retryAllFailed,
  retryEvent,
} from "../../src/webhooks/event_service.ts";
import { AdminSection, type Notice } from "../../components/AdminSection.tsx";
import { PostButton } from "../../components/PostButton.tsx";
import { Time } from "../../components/Time.tsx";
import {
  csrfToken,
  enumQuery,
  notFound,
  noticeFromQuery,
  readAdminForm,
  redirectWithNotice,
  uuidParam,
} from "./admin_input.ts";

const STATUSES: readonly DeliveryStatus[] = ["pending", "delivered", "failed"];
const EVENT_TYPE = /^[a-z0-9][a-z0-9_.-]{0,99}$/i;
const LIST_LIMIT = 100;

const NOTICES: Record<string, (count: number) => Notice> = {
  retried: (n) => ({
    kind: "ok",
    text: `Retry started: ${n} failed ${plural(n, "delivery", "deliveries")} start again from ` +
      "attempt 0",
  }),
  nothing: () => ({ kind: "ok", text: "Nothing to retry: the event has no failed delivery" }),
  retried_all: (n) => ({
    kind: "ok",
    text: n === 0
      ? "Nothing to retry: no event has failed"
      : `Retry started for ${n} failed ${plural(n, "event", "events")}`,
  }),
};

/** Routes of the event pages (mounted at /admin/events behind requireUser and requireAdmin). */
export function adminEventRoutes(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const status = enumQuery(c, "status", STATUSES);
    const type = (c.req.query("type") ?? "").trim();
    if (type !== "" && !EVENT_TYPE.test(type)) {
      throw new HttpError(
        400,
        "bad_filter",
        'Cannot filter by type: expected letters, digits, ".", "_" or "-" like "file.stored"',
      );
    }
    const events = await listOutboxEvents(deps, {
      status,
      eventType: type || undefined,
      limit: LIST_LIMIT,
    });
    const here = c.req.path + (new URL(c.req.url).search || "");
    return renderPage(
      c,
      <AdminSection title="Outbox events" current="events" notice={noticeFromQuery(c, NOTICES)}>
        <form method="get" action="/admin/events" class="filters">
          <label>
            Status{" "}
            <select name="status">
              <option value="">any</option>
              {STATUSES.map((s) => <option key={s} value={s} selected={s === status}>{s}</option>)}
            </select>
          </label>
          <label>
            Type <input type="text" name="type" value={type} placeholder="file.stored" />
          </label>
          <button type="submit">Filter</button>
        </form>
        <p>
          <PostButton
            action="/admin/events/retry-failed"
            csrf={csrfToken(c)}
            label="Retry all failed"
            fields={{ back: here }}
          />
        </p>
        <EventTable events={events} csrf={csrfToken(c)} back={here} />
        <p class="muted">
          The newest {LIST_LIMIT} matching events.
        </p>
      </AdminSection>,
      { title: "Events" },
    );
  });

  app.post("/retry-failed", async (c) => {
    const form = await readAdminForm(c);
    const result = await retryAllFailed(deps);
    return redirectWithNotice(c, backPath(form.back), "retried_all", result.events);
  });

  app.get("/:id", async (c) => {
    const id = uuidParam(c, "event");
    const detail = await getEventDetail(deps, id);
    if (detail === null) throw notFound("event", id);
    return renderPage(
      c,
      <AdminSection
        title={`Event ${detail.event.eventType}`}
        current="events"
        notice={noticeFromQuery(c, NOTICES)}
      >
        <EventDetailView detail={detail} csrf={csrfToken(c)} />
      </AdminSection>,
      { title: "Event" },
    );
  });

  app.post("/:id/retry", async (c) => {
    const form = await readAdminForm(c);
    const id = uuidParam(c, "event");
    const result = await retryEvent(deps, id);
    if (result === null) throw notFound("event", id);
    const back = backPath(form.back, `/admin/events/${id}`);
    return result.events === 0
      ? redirectWithNotice(c, back, "nothing")
      : redirectWithNotice(c, back, "retried", result.deliveries);
  });

  return app;
}

/** Where a form asked to go back to: an admin events page only (no open redirect). */
function backPath(back: string | undefined, fallback = "/admin/events"): string {
  return back !== undefined && /^\/admin\/events(\/[0-9a-f-]{36})?(\?[^\\]*)?$/i.test(back)
    ? back
    : fallback;
}

function plural(count: number, one: string, many: string): string {
  return count === 1 ? one : many;
}

function StatusBadge({ status }: { status: string }) {
  return <span class={`status status-${status}`}>{status}</span>;
}

function EventTable(
  { events, csrf, back }: { events: OutboxEventSummary[]; csrf: string; back: string },
) {
  if (events.length === 0) return <p class="muted">No events match.</p>;
  return (
    <table class="admin-table events">
      <thead>
        <tr>
          <th>Id</th>
          <th>Type</th>
          <th>Status</th>
          <th>Attempts</th>
          <th>Error</th>
          <th>Created</th>
          <th></th>
        </tr>
      </thead>
      <tbody>
        {events.map((event) => (
          <tr key={event.id} data-event-id={event.id} data-status={event.status}>
            <td>
              <a href={`/admin/events/${event.id}`}>
                <code>{event.id}</code>
              </a>
            </td>
            <td>{event.eventType}</td>
            <td>
              <StatusBadge status={event.status} />
            </td>
            <td>{event.attempts}</td>
            <td class="error-text" title={event.errorMessage}>
              {shorten(event.errorMessage, 160)}
            </td>
            <td>
              <Time at={event.createdAt} />
            </td>
            <td>
              {event.status === "failed" && (
                <PostButton
                  action={`/admin/events/${event.id}/retry`}
                  csrf={csrf}
                  label="Retry"
                  fields={{ back }}
                />
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function EventDetailView({ detail, csrf }: { detail: EventDetail; csrf: string }) {
  const { event, deliveries, attempts } = detail;
  const urls = new Map(deliveries.map((d) => [d.id, d.url]));
  return (
    <>
      <dl class="facts" data-event-id={event.id} data-status={event.status}>
        <dt>Id</dt>
        <dd>
          <code>{event.id}</code>
        </dd>
        <dt>Status</dt>
        <dd>
          <StatusBadge status={event.status} /> (attempts {event.attempts}){" "}
          {event.status === "failed" && (
            <PostButton action={`/admin/events/${event.id}/retry`} csrf={csrf} label="Retry" />
          )}
        </dd>
        <dt>Aggregate</dt>
        <dd>
          {event.aggregateType} <code>{event.aggregateId}</code>
        </dd>
        <dt>Idempotency key</dt>
        <dd>
          <code>{event.idempotencyKey}</code>
        </dd>
        <dt>Created</dt>
        <dd>
          <Time at={event.createdAt} />
        </dd>
        {event.status === "pending" && (
          <>
            <dt>Next attempt</dt>
            <dd>
              <Time at={event.nextAttemptAt} />
            </dd>
          </>
        )}
        {event.deliveredAt && (
          <>
            <dt>Delivered</dt>
            <dd>
              <Time at={event.deliveredAt} />
            </dd>
          </>
        )}
        {event.errorMessage && (
          <>
            <dt>Error</dt>
            <dd class="error-text">{event.errorMessage}</dd>
          </>
        )}
      </dl>
      <h2>Payload</h2>
      <pre class="payload">{JSON.stringify(event.payload, null, 2)}</pre>
      <h2>Deliveries ({deliveries.length})</h2>
      {deliveries.length === 0
        ? (
          <p class="muted">
            No deliveries: no active endpoint matched, or fan-out has not run yet.
          </p>
        )
        : (
          <table class="admin-table deliveries">
            <thead>
              <tr>
                <th>Endpoint</th>
                <th>Status</th>
                <th>Attempts</th>
                <th>Last status code</th>
                <th>Last error</th>
                <th>Delivered / next attempt</th>
              </tr>
            </thead>
            <tbody>
              {deliveries.map((d) => (
                <tr key={d.id} data-delivery-id={d.id} data-status={d.status}>
                  <td>
                    <code>{d.url}</code>
                  </td>
                  <td>
                    <StatusBadge status={d.status} />
                  </td>
                  <td>{d.attempts}/{d.maxAttempts}</td>
                  <td>{d.lastStatusCode ?? "—"}</td>
                  <td class="error-text">{d.lastError}</td>
                  <td>
                    <Time
                      at={d.status === "delivered"
                        ? d.deliveredAt
                        : d.status === "pending"
                        ? d.nextAttemptAt
                        : null}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      <h2>Attempts ({attempts.length})</h2>
      {attempts.length === 0
        ? <p class="muted">No attempts yet.</p>
        : (
          <table class="admin-table attempts">
            <thead>
              <tr>
                <th>Time</th>
                <th>Endpoint</th>
                <th>#</th>
                <th>Status code</th>
                <th>Duration</th>
                <th>Error</th>
                <th>Response start</th>
              </tr>
            </thead>
            <tbody>
              {attempts.map((a) => (
                <tr key={`${a.deliveryId}:${a.attemptNumber}`}>
                  <td>
                    <Time at={a.attemptedAt} />
                  </td>
                  <td>
                    <code>{urls.get(a.deliveryId) ?? a.deliveryId}</code>
                  </td>
                  <td>{a.attemptNumber}</td>
                  <td>{a.statusCode ?? "no response"}</td>
                  <td>{a.durationMs} ms</td>
                  <td class="error-text">{a.error}</td>
                  <td>
                    <code>{shorten(a.responseBody, 500)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
    </>
  );
}

function shorten(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
