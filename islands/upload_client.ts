/// <reference lib="dom" />
/**
 * The upload island's side of the HTTP API (/api/v1, the session cookie plus `X-CSRF-Token`):
 * creating and finalizing a batch, and sending one file with progress.
 */

/** The part of the API's stored-file answer the page shows. */
export interface StoredFile {
  id: string;
  original_filename: string;
  content_type: string;
  size_bytes: number;
  sha256: string;
  /** Signed download link. */
  url: string;
}

/**
 * What became of one file: stored, or the server's (or the network's) reason why not, with
 * `retryAfterSeconds` when the server asked for the same request later (429: the user's other
 * uploads, in other tabs too, hold every slot).
 */
export type SendOutcome =
  | { ok: true; file: StoredFile }
  | { ok: false; message: string; retryAfterSeconds?: number };

/**
 * POSTs `{}` with the CSRF header and returns the JSON answer; throws the API's error message.
 *
 * @example
 * const batch = await postJson<{ id: string }>("/api/v1/batches", csrfToken);
 */
export async function postJson<T>(url: string, csrfToken: string): Promise<T> {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Accept": "application/json",
      "Content-Type": "application/json",
      "X-CSRF-Token": csrfToken,
    },
    body: "{}",
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(errorMessage(body, response.status));
  return body as T;
}

/**
 * Sends `file` as the raw body of `POST /api/v1/files` into batch `batchId`, reporting bytes
 * sent to `onProgress`. XMLHttpRequest rather than fetch: only it reports upload progress.
 * Never rejects: a refusal or a lost connection is an `ok: false` outcome.
 *
 * @example
 * const outcome = await sendFile(file, { batchId, csrfToken, onProgress: (n) => sent.value = n });
 */
export function sendFile(
  file: File,
  options: { batchId: string; csrfToken: string; onProgress: (sent: number) => void },
): Promise<SendOutcome> {
  const query = new URLSearchParams({ filename: file.name, batch_id: options.batchId });
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/files?${query}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", options.csrfToken);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (event) => options.onProgress(event.loaded);
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        // Not JSON (a proxy's error page): the status says enough.
      }
      const stored = body as (StoredFile & { status?: string }) | null;
      if (xhr.status >= 200 && xhr.status < 300 && stored?.status === "stored") {
        resolve({ ok: true, file: stored });
      } else if (xhr.status === 429 && errorCode(body) === "too_many_uploads") {
        const retryAfterSeconds = Number(xhr.getResponseHeader("Retry-After")) || 5;
        resolve({ ok: false, message: errorMessage(body, xhr.status), retryAfterSeconds });
      } else {
        resolve({ ok: false, message: errorMessage(body, xhr.status) });
      }
    };
    xhr.onerror = () =>
      resolve({ ok: false, message: "the connection was lost before the server answered" });
    xhr.onabort = () => resolve({ ok: false, message: "cancelled" });
    xhr.send(file);
  });
}

/**
 * Runs `work` over `items` with at most `limit` running at once.
 *
 * @example
 * await runPool(files, 3, (file) => upload(file));
 */
export async function runPool<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/** The message of a thrown value. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The API's `{error: {code}}`, or null. */
function errorCode(body: unknown): string | null {
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
  return typeof code === "string" ? code : null;
}

/** The API's `{error: {message}}`, or the status when the body has none. */
function errorMessage(body: unknown, status: number): string {
  const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
  return typeof message === "string" ? message : `the server answered ${status}`;
}
