/** Server-side rendering of Preact pages into full HTML documents. */
import type { Context } from "hono";
import type { ComponentChildren } from "preact";
import { renderToString } from "preact-render-to-string";
import { Layout } from "../../routes/_layout.tsx";
import type { AppEnv } from "./app_env.ts";
import type { Status } from "./errors.ts";

/** Options for `renderPage`. */
export interface RenderOptions {
  status?: Status;
  title?: string;
  /** Load the islands bundle (only pages with islands ship JavaScript). */
  islands?: boolean;
}

/** Renders `body` inside the layout as an HTML response. */
export function renderPage(
  c: Context<AppEnv>,
  body: ComponentChildren,
  options: RenderOptions = {},
): Response {
  const user = c.get("user") ?? null;
  const csrfToken = c.get("session")?.csrfToken ?? null;
  const html = renderToString(
    <Layout
      title={options.title ?? "Portal"}
      user={user}
      csrfToken={csrfToken}
      islands={options.islands ?? false}
    >
      {body}
    </Layout>,
  );
  c.header("Cache-Control", "no-store");
  return c.html(`<!doctype html>${html}`, options.status ?? 200);
}
