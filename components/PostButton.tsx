/** A one-button POST form: how the admin pages act on a row. */

/** Props of `PostButton`. */
export interface PostButtonProps {
  action: string;
  csrf: string;
  label: string;
  /** Extra hidden fields (default none). */
  fields?: Record<string, string>;
  /** Class of the button (default none). */
  class?: string;
}

/** A one-button POST form carrying the CSRF token. */
export function PostButton({ action, csrf, label, fields = {}, class: cls }: PostButtonProps) {
  return (
    <form method="post" action={action} class="inline">
      <input type="hidden" name="csrf_token" value={csrf} />
      {Object.entries(fields).map(([name, value]) => (
        <input key={name} type="hidden" name={name} value={value} />
      ))}
      <button type="submit" class={cls}>{label}</button>
    </form>
  );
}
