/** Server-side rendering of Preact pages into full HTML documents. */
import type { Context } from "hono";
import type { ComponentChildren } from "preact";
import { renderToString } from "preact-render-to-string";
import { Layout } from "./Layout.tsx";
import type { AppEnv } from "../src/http/app_env.ts";
import type { ErrorPageContent, Status } from "../src/http/errors.ts";
import { ErrorPage } from "./ErrorPage.tsx";

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

/** The HTML error page inside the layout (what `errorHandlers` in src/http/errors.ts calls). */
export function renderErrorPage(c: Context<AppEnv>, page: ErrorPageContent): Response {
  return renderPage(c, <ErrorPage {...page} />, { status: page.status, title: "Error" });
}
