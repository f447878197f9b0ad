/** Portal's version, shown by `portal --version` and in the webhook User-Agent. */
export const VERSION = "0.1.0";
