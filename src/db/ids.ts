/** UUID v7 ids (time-ordered), generated in TypeScript as SPEC §4 asks. */
import { uuidv7 } from "uuidv7";

/** A new UUID v7. */
export function newId(): string {
  return uuidv7();
}

/** True when `value` looks like a UUID (any version); used to answer 404 rather than 500. */
export function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}
