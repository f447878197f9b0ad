/**
 * The server half of the island mechanism (Fresh style): `<Island name props>` renders the
 * registered component to HTML inside a marker carrying its name and JSON props, which
 * `islands/boot.ts` finds in the browser to hydrate that HTML in place. A page that uses an
 * island passes `{ islands: true }` to `renderPage` so the bundle is loaded.
 */
import type { ComponentProps, FunctionComponent } from "preact";
import { type IslandName, ISLANDS } from "../islands/registry.ts";

/** Props of `Island`: which island, and the props it gets on the server and in the browser. */
export interface IslandProps<N extends IslandName> {
  name: N;
  /** Must survive `JSON.stringify` unchanged: no functions, dates, or undefined fields. */
  props: ComponentProps<(typeof ISLANDS)[N]>;
}

/** Renders island `name` with `props`, marked for hydration. */
export function Island<N extends IslandName>({ name, props }: IslandProps<N>) {
  // Each registry entry has its own props type; `props` was checked against this one above.
  const Component = ISLANDS[name] as FunctionComponent<object>;
  // The JSON goes in an attribute, which the renderer entity-escapes (`"`, `&`, `<`, `>`), so
  // no value can end the attribute or open a tag; the browser decodes it back for JSON.parse.
  return (
    <div data-island={name} data-props={JSON.stringify(props)}>
      <Component {...props} />
    </div>
  );
}
