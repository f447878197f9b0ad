/** The HTML error page. */

/** Props of `ErrorPage`. */
export interface ErrorPageProps {
  status: number;
  message: string;
  /** Shown so a person can quote it to whoever reads the server log. */
  requestId?: string;
}

/** Shows a status and a message, with a way back. */
export function ErrorPage({ status, message, requestId }: ErrorPageProps) {
  return (
    <section class="card">
      <h1>
        {status === 404 ? "Not found" : status >= 500 ? "Something went wrong" : "Request refused"}
      </h1>
      <p class="error" role="alert">{message}</p>
      {requestId && (
        <p class="muted">
          Request id: <code>{requestId}</code>
        </p>
      )}
      <p>
        <a href="/">Back to Portal</a>
      </p>
    </section>
  );
}
