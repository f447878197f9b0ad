/// <reference lib="dom" />
/**
 * The upload page's island. On the server it renders a plain multipart form that works with no
 * JavaScript (POST /upload). Hydrated, it takes over that form: files are dropped or picked
 * into a list, sent one request each to the JSON API (a batch first, `POST /api/v1/files` per
 * file with a progress bar, finalize last), and each file shows what the server made of it.
 */
import { type Signal, signal, useSignal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { describeTypes, formatBytes } from "./format.ts";
import {
  messageOf,
  postJson,
  runPool,
  sendFile,
  type SendOutcome,
  type StoredFile,
} from "./upload_client.ts";

/** Props of `UploadZone` (JSON: they travel in the island marker). */
export interface UploadZoneProps {
  /** The session's CSRF token: the form's first field, and `X-CSRF-Token` on API calls. */
  csrfToken: string;
  /** Most files one upload may carry (`MAX_FILES_PER_REQUEST`). */
  maxFiles: number;
  /** Largest file in bytes (`FILE_UPLOAD_MAX_SIZE`). */
  maxSize: number;
  /** Allowed MIME types, as the server checks them against the sniffed type. */
  allowedTypes: string[];
}

type FileState = "queued" | "sending" | "stored" | "failed";

interface Entry {
  key: string;
  file: File;
  state: Signal<FileState>;
  /** Bytes sent so far; null until the request starts (no bar for a file never sent). */
  sent: Signal<number | null>;
  stored: Signal<StoredFile | null>;
  error: Signal<string | null>;
}

type Phase = "choosing" | "sending" | "done";

/** Requests in flight at once: enough to keep the link busy, few enough to show progress. */
const PARALLEL_UPLOADS = 3;
/** How often a file waits for a free upload slot (429) before it is shown as failed. */
const MAX_WAITS = 60;

const INPUT_ID = "upload-files";

/** The drop zone, file list and per-file progress of the upload page. */
export default function UploadZone(props: UploadZoneProps) {
  const { csrfToken, maxFiles, maxSize, allowedTypes } = props;
  // False during server rendering and the hydrating render, so both produce the same no-JS
  // markup; the effect below flips it once the island is live.
  const enhanced = useSignal(false);
  const entries = useSignal<Entry[]>([]);
  const phase = useSignal<Phase>("choosing");
  const dragging = useSignal(false);
  const notice = useSignal<string | null>(null);
  const batchStatus = useSignal<string | null>(null);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    enhanced.value = true;
    // A file dropped beside the zone would make the browser navigate away to open it.
    const ignore = (event: DragEvent) => event.preventDefault();
    globalThis.addEventListener("dragover", ignore);
    globalThis.addEventListener("drop", ignore);
    return () => {
      globalThis.removeEventListener("dragover", ignore);
      globalThis.removeEventListener("drop", ignore);
    };
  }, []);

  const addFiles = (files: FileList | null) => {
    if (!files || phase.value === "sending") return;
    if (phase.value === "done") reset();
    const known = new Set(entries.value.map((entry) => entry.key));
    const added: Entry[] = [];
    let skipped = 0;
    for (const file of Array.from(files)) {
      const key = `${file.name}:${file.size}:${file.lastModified}`;
      if (known.has(key)) continue;
      if (entries.value.length + added.length >= maxFiles) {
        skipped++;
        continue;
      }
      known.add(key);
      added.push(newEntry(key, file, maxSize));
    }
    notice.value = skipped > 0
      ? `Left out ${skipped} file(s): one upload carries at most ${maxFiles} files`
      : null;
    entries.value = [...entries.value, ...added];
    // The list, not the input, is the truth now; clearing lets the same file be picked again.
    if (input.current) input.current.value = "";
  };

  const reset = () => {
    entries.value = [];
    phase.value = "choosing";
    batchStatus.value = null;
    notice.value = null;
  };

  const remove = (key: string) => {
    entries.value = entries.value.filter((entry) => entry.key !== key);
  };

  const send = async () => {
    const queued = entries.value.filter((entry) => entry.state.value === "queued");
    if (queued.length === 0) return;
    phase.value = "sending";
    notice.value = null;
    let batchId: string;
    try {
      batchId = (await postJson<{ id: string }>("/api/v1/batches", csrfToken)).id;
    } catch (error) {
      // Nothing was sent: keep the list so the same button retries.
      notice.value = `Cannot start the upload: ${messageOf(error)}`;
      phase.value = "choosing";
      return;
    }
    await runPool(queued, PARALLEL_UPLOADS, async (entry) => {
      let outcome: SendOutcome;
      for (let attempt = 1;; attempt++) {
        entry.state.value = "sending";
        entry.sent.value = 0;
        outcome = await sendFile(entry.file, {
          batchId,
          csrfToken,
          onProgress: (sent) => (entry.sent.value = sent),
        });
        // Every upload slot of this user is busy (other tabs): wait, as the server asked.
        if (outcome.ok || outcome.retryAfterSeconds === undefined || attempt >= MAX_WAITS) break;
        entry.state.value = "queued";
        const wait = outcome.retryAfterSeconds * 1000;
        await new Promise((done) => setTimeout(done, wait));
      }
      if (outcome.ok) {
        entry.sent.value = entry.file.size;
        entry.stored.value = outcome.file;
      } else {
        entry.error.value = outcome.message;
      }
      entry.state.value = outcome.ok ? "stored" : "failed";
    });
    try {
      const finished = await postJson<{ status: string }>(
        `/api/v1/batches/${encodeURIComponent(batchId)}/finalize`,
        csrfToken,
      );
      batchStatus.value = finished.status;
    } catch (error) {
      // Each file already shows its own outcome; only the batch summary is missing.
      notice.value = `Cannot finish the upload: ${messageOf(error)}`;
    }
    phase.value = "done";
  };

  const onSubmit = (event: SubmitEvent) => {
    // Enhanced: the API carries the files, one request each, instead of the form post.
    if (!enhanced.value) return;
    event.preventDefault();
    if (phase.value === "done") reset();
    else void send();
  };

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    dragging.value = false;
    addFiles(event.dataTransfer?.files ?? null);
  };

  const isEnhanced = enhanced.value;
  const list = entries.value;
  const current = phase.value;
  const waiting = list.filter((entry) => entry.state.value === "queued").length;

  return (
    <form
      method="post"
      action="/upload"
      enctype="multipart/form-data"
      class="upload"
      onSubmit={onSubmit}
    >
      {/* First field, so the server checks it before reading any file (no-JS post). */}
      <input type="hidden" name="csrf_token" value={csrfToken} />
      <div
        class={dragging.value ? "dropzone active" : "dropzone"}
        onDragEnter={(event) => {
          event.preventDefault();
          dragging.value = true;
        }}
        onDragOver={(event) => {
          event.preventDefault();
          dragging.value = true;
        }}
        onDragLeave={(event) => {
          // Moving onto a child element also fires dragleave on the zone: not a real leave.
          const to = event.relatedTarget as Node | null;
          if (!to || !event.currentTarget.contains(to)) dragging.value = false;
        }}
        onDrop={onDrop}
      >
        <p class="dropzone-title">
          {isEnhanced ? "Drop files here" : "Choose the files to upload"}
        </p>
        <input
          ref={input}
          id={INPUT_ID}
          type="file"
          name="files"
          multiple
          required={!isEnhanced}
          disabled={current === "sending"}
          class={isEnhanced ? "visually-hidden" : undefined}
          onChange={(event) => addFiles(event.currentTarget.files)}
        />
        {isEnhanced && (
          <label for={INPUT_ID} class="button secondary">
            Choose files
          </label>
        )}
        <p class="muted hint">
          Up to {maxFiles} files, {formatBytes(maxSize)} each.{" "}
          <span title={allowedTypes.join(", ")}>Allowed: {describeTypes(allowedTypes)}.</span>
        </p>
      </div>

      {list.length > 0 && (
        <ul class="files" aria-live="polite">
          {list.map((entry) => (
            <FileRow
              key={entry.key}
              entry={entry}
              removable={current === "choosing"}
              onRemove={remove}
            />
          ))}
        </ul>
      )}

      {notice.value && <p class="error" role="alert">{notice.value}</p>}

      <div class="actions">
        {isEnhanced && current === "done"
          ? <button type="submit">Upload more files</button>
          : (
            <button type="submit" disabled={isEnhanced && (current === "sending" || waiting === 0)}>
              {current === "sending"
                ? "Uploading…"
                : isEnhanced && waiting > 0
                ? `Upload ${waiting} file${waiting === 1 ? "" : "s"}`
                : "Upload"}
            </button>
          )}
        {batchStatus.value && <BatchSummary status={batchStatus.value} entries={list} />}
      </div>
    </form>
  );
}

/** Props of `FileRow`. */
interface FileRowProps {
  entry: Entry;
  removable: boolean;
  onRemove: (key: string) => void;
}

/** One chosen file: its size, then its progress, then what the server said. */
function FileRow({ entry, removable, onRemove }: FileRowProps) {
  const { file } = entry;
  const state = entry.state.value;
  const sent = entry.sent.value;
  const stored = entry.stored.value;
  const percent = sent === null ? 0 : file.size === 0 ? 100 : Math.round(sent / file.size * 100);
  return (
    <li class={`file ${state}`} data-state={state} data-name={file.name}>
      <div class="file-head">
        <span class="file-name">{file.name}</span>
        <span class="muted">{formatBytes(file.size)}</span>
        {removable && state === "queued" && (
          <button
            type="button"
            class="link"
            onClick={() => onRemove(entry.key)}
          >
            Remove
          </button>
        )}
        {stored && <a href={stored.url} download={stored.original_filename}>Download</a>}
      </div>
      {sent !== null && (
        <progress max={100} value={percent} aria-label={`Sending ${file.name}`}>
          {percent}%
        </progress>
      )}
      {stored && (
        <p class="result ok">
          Stored as {stored.content_type}. SHA-256 <code class="sha256">{stored.sha256}</code>
        </p>
      )}
      {state === "failed" && <p class="result error">Not stored: {entry.error.value}</p>}
    </li>
  );
}

/** The batch's outcome once finalized. */
function BatchSummary({ status, entries }: { status: string; entries: Entry[] }) {
  const stored = entries.filter((entry) => entry.state.value === "stored").length;
  const failed = entries.filter((entry) => entry.state.value === "failed").length;
  return (
    <p class={status === "complete" ? "ok" : status === "failed" ? "error" : "muted"} role="status">
      Upload {status}: {stored} stored{failed > 0 ? `, ${failed} not stored` : ""}
    </p>
  );
}

function newEntry(key: string, file: File, maxSize: number): Entry {
  // Refused here rather than by the server's 413 midway, which costs the whole limit in bytes
  // and often surfaces as a reset connection instead of a readable answer.
  const tooLarge = file.size > maxSize;
  return {
    key,
    file,
    state: signal<FileState>(tooLarge ? "failed" : "queued"),
    sent: signal<number | null>(null),
    stored: signal<StoredFile | null>(null),
    error: signal<string | null>(
      tooLarge
        ? `too large: ${formatBytes(file.size)} is over the ${formatBytes(maxSize)} limit`
        : null,
    ),
  };
}
