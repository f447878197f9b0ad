/**
 * The migrations, embedded in the module graph so the compiled binary carries them.
 * Add a new file to `migrations/` and a line here; `tests/migrate_test.ts` checks the two agree.
 */
import m0001 from "../../migrations/0001_init.sql" with { type: "text" };
import m0002 from "../../migrations/0002_event_links.sql" with { type: "text" };
import m0003 from "../../migrations/0003_token_expiry.sql" with { type: "text" };
import m0004 from "../../migrations/0004_upload_slots.sql" with { type: "text" };

/** One forward-only migration. */
export interface Migration {
  version: string;
  name: string;
  sql: string;
}

/** Every migration, in the order they apply. */
export const MIGRATIONS: readonly Migration[] = [
  { version: "0001", name: "0001_init.sql", sql: m0001 },
  { version: "0002", name: "0002_event_links.sql", sql: m0002 },
  { version: "0003", name: "0003_token_expiry.sql", sql: m0003 },
  { version: "0004", name: "0004_upload_slots.sql", sql: m0004 },
];
