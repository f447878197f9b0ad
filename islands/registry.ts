/**
 * Every island by the name its marker carries. The server's `<Island>` (components/Island.tsx)
 * renders from this table and `boot.ts` hydrates from it, so the two cannot disagree.
 */
import UploadZone from "./UploadZone.tsx";

/** The island components, keyed by marker name. */
export const ISLANDS = { UploadZone } as const;

/** The name of a registered island. */
export type IslandName = keyof typeof ISLANDS;

/** True when `name` names a registered island. */
export function isIslandName(name: string): name is IslandName {
  return Object.hasOwn(ISLANDS, name);
}
