-- API tokens may be given a lifetime (portal token create --expires-in-days, POST /api/v1/tokens
-- "expires_in_days"); NULL means the token works until it is revoked. Past expires_at a token is
-- refused exactly like a revoked one.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
