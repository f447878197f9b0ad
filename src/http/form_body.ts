/** Reads an HTML form post (urlencoded or multipart text fields) with clear 4xx errors. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { shownName, textProblem } from "./client_text.ts";
import { HttpError } from "./errors.ts";

/**
 * Parses the posted form and returns its text fields (file parts are dropped). A body that is
 * not form data is 400 `malformed_form`; a field whose name or value is not storable text
 * (see `textProblem`) is 400 `invalid_text`, naming the field. A body limit's 413 passes through.
 *
 * @example
 * const form = await readForm(c);
 * const email = form.email ?? "";
 */
export async function readForm(c: Context): Promise<Record<string, string>> {
  let body: Record<string, unknown>;
  try {
    body = await c.req.parseBody();
  } catch (error) {
    if (error instanceof HTTPException || error instanceof HttpError) throw error;
    throw new HttpError(
      400,
      "malformed_form",
      "Cannot read the form: the body is not valid form data",
    );
  }
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) {
    const nameProblem = textProblem(name);
    if (nameProblem !== null) {
      throw new HttpError(400, "invalid_text", `Cannot read the form: a field name ${nameProblem}`);
    }
    if (typeof value !== "string") continue;
    const problem = textProblem(value);
    if (problem !== null) {
      throw new HttpError(
        400,
        "invalid_text",
        `Cannot read the form: field ${shownName(name)} ${problem}`,
      );
    }
    fields[name] = value;
  }
  return fields;
}
