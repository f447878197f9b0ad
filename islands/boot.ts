/// <reference lib="dom" />
/**
 * The islands bundle's entry (built into static/islands.js by `deno task bundle`): finds each
 * marker the server's `<Island>` rendered and hydrates the server HTML inside it in place, so
 * the page works before this runs and only gains behaviour when it does.
 */
import { h, hydrate } from "preact";
import { isIslandName, ISLANDS } from "./registry.ts";

function bootIslands(root: ParentNode): void {
  for (const marker of root.querySelectorAll<HTMLElement>("[data-island]")) {
    const name = marker.dataset.island ?? "";
    if (!isIslandName(name)) {
      console.error(`Cannot hydrate island "${name}": it is not listed in islands/registry.ts`);
      continue;
    }
    let props: unknown;
    try {
      props = JSON.parse(marker.dataset.props ?? "{}");
    } catch (error) {
      console.error(`Cannot hydrate island "${name}": its props are not JSON`, error);
      continue;
    }
    // The registry is one table of differently-typed components; the server serialized props
    // of exactly this component's type, so the cast restores what JSON erased.
    const component = ISLANDS[name] as (props: object) => ReturnType<typeof h>;
    hydrate(h(component, props as object), marker);
  }
}

bootIslands(document);
