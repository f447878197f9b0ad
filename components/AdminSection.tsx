/** The frame of every admin page: the admin sub-navigation, a title, a notice, the content. */
import type { ComponentChildren } from "preact";

const SECTIONS = [
  ["events", "Events"],
  ["webhooks", "Webhooks"],
  ["files", "Files"],
] as const;

/** Props of `AdminSection`. */
export interface AdminSectionProps {
  title: string;
  /** The admin area shown ("" on the start page). */
  current: "" | (typeof SECTIONS)[number][0];
  /** A notice to show above the content (the outcome of the last action). */
  notice?: Notice | null;
  children: ComponentChildren;
}

/** An admin page: the admin sub-navigation, a title, an optional notice, the content. */
export function AdminSection({ title, current, notice, children }: AdminSectionProps) {
  return (
    <section class="card admin">
      <nav class="admin-nav" aria-label="Admin">
        <a href="/admin" aria-current={current === "" ? "page" : undefined}>Admin</a>
        {SECTIONS.map(([key, label]) => (
          <a key={key} href={`/admin/${key}`} aria-current={current === key ? "page" : undefined}>
            {label}
          </a>
        ))}
      </nav>
      <h1>{title}</h1>
      {notice && (
        <p class={`notice ${notice.kind}`} role={notice.kind === "error" ? "alert" : "status"}>
          {notice.text}
        </p>
      )}
      {children}
    </section>
  );
}

/** The outcome of an action, shown once at the top of a page. */
export interface Notice {
  kind: "ok" | "error";
  text: string;
}
