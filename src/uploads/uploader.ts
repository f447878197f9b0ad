/** Who acts on an upload: the signed-in user or the token's owner. */

/** Who is acting: the signed-in user or token owner. */
export interface Uploader {
  id: string;
  isAdmin: boolean;
}
