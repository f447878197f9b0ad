/** Upload counters for /metrics (SPEC §5 Operations: uploads and bytes by outcome). */
import type { Metrics } from "../metrics/metrics.ts";

/** How an upload ended: "stored" or the reason it failed. */
export type UploadOutcome =
  | "stored"
  | "too_large"
  | "type_not_allowed"
  | "empty"
  | "storage_unavailable"
  | "aborted"
  | "timeout"
  | "error";

/** Counts one upload and the bytes received for it under `outcome`. */
export function recordUpload(metrics: Metrics, outcome: UploadOutcome, bytes: number): void {
  metrics.counter("portal_uploads_total", "Uploads by outcome").inc({ outcome });
  metrics.counter("portal_upload_bytes_total", "Bytes received by upload outcome")
    .inc({ outcome }, bytes);
}
