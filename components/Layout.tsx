/** The page shell: head, a top bar with the signed-in user, and the content. */
import type { ComponentChildren } from "preact";
import type { User } from "../src/auth/account_service.ts";

/** Props of `Layout`. */
export interface LayoutProps {
  title: string;
  user: User | null;
  csrfToken: string | null;
  islands: boolean;
  children: ComponentChildren;
}

/** Wraps every page. */
export function Layout({ title, user, csrfToken, islands, children }: LayoutProps) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{title === "Portal" ? "Portal" : `${title} · Portal`}</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href="/static/portal.css" />
        {csrfToken && <meta name="csrf-token" content={csrfToken} />}
      </head>
      <body>
        <header class="topbar">
          <a class="brand" href="/">Portal</a>
          {user && (
            <nav>
              <a href="/upload">Upload</a>
              {user.isAdmin && <a href="/admin">Admin</a>}
              <span class="who">{user.email}{user.isAdmin ? " (admin)" : ""}</span>
              <form method="post" action="/logout" class="inline">
                <input type="hidden" name="csrf_token" value={csrfToken ?? ""} />
                <button type="submit" class="link">Log out</button>
              </form>
            </nav>
          )}
        </header>
        <main>{children}</main>
        {islands && <script type="module" src="/static/islands.js"></script>}
      </body>
    </html>
  );
}
