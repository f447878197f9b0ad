-- Portal schema, SPEC §4. Ids are UUID v7 generated in TypeScript; times are timestamptz.
-- Table and column names are part of the contract (operators query them).

CREATE TABLE portal_setting (
  key text PRIMARY KEY,
  value text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id uuid PRIMARY KEY,
  email text NOT NULL,
  password_hash text NOT NULL,
  is_admin boolean NOT NULL DEFAULT false,
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_email_lower CHECK (email = lower(email))
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE sessions (
  id text PRIMARY KEY, -- SHA-256 of the cookie value; the cookie itself is never stored
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  csrf_token text NOT NULL,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE api_tokens (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL DEFAULT '',
  token_hash text NOT NULL UNIQUE, -- SHA-256 hex of the token
  token_prefix text NOT NULL, -- first characters, to recognise a token in listings
  last_used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_user_id_idx ON api_tokens (user_id);

CREATE TABLE login_attempt (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL,
  address text NOT NULL,
  succeeded boolean NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempt_email_idx ON login_attempt (email, created_at);
CREATE INDEX login_attempt_address_idx ON login_attempt (address, created_at);

CREATE TABLE upload_batch (
  id uuid PRIMARY KEY,
  user_id uuid REFERENCES users (id) ON DELETE SET NULL,
  idempotency_key text,
  status text NOT NULL DEFAULT 'open'
    CHECK (status IN ('open', 'complete', 'partial', 'failed')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX upload_batch_user_idempotency_key
  ON upload_batch (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE upload_file (
  id uuid PRIMARY KEY,
  batch_id uuid REFERENCES upload_batch (id) ON DELETE SET NULL,
  uploaded_by uuid REFERENCES users (id) ON DELETE SET NULL,
  original_filename text NOT NULL,
  content_type text NOT NULL DEFAULT '',
  size_bytes bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
  sha256 text NOT NULL DEFAULT '',
  storage_backend text NOT NULL CHECK (storage_backend IN ('local', 's3')),
  storage_key text, -- null until bytes are stored (failed files have none)
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  status text NOT NULL DEFAULT 'uploading'
    CHECK (status IN ('uploading', 'stored', 'processed', 'deleted', 'failed')),
  error_message text NOT NULL DEFAULT '',
  expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX upload_file_storage_key ON upload_file (storage_backend, storage_key)
  WHERE storage_key IS NOT NULL;
CREATE INDEX upload_file_batch_id_idx ON upload_file (batch_id);
CREATE INDEX upload_file_uploaded_by_idx ON upload_file (uploaded_by, created_at DESC);
CREATE INDEX upload_file_expires_at_idx ON upload_file (expires_at)
  WHERE status IN ('stored', 'processed');

CREATE TABLE upload_session (
  id uuid PRIMARY KEY,
  file_id uuid NOT NULL UNIQUE REFERENCES upload_file (id) ON DELETE CASCADE,
  user_id uuid REFERENCES users (id) ON DELETE SET NULL,
  upload_length bigint CHECK (upload_length IS NULL OR upload_length >= 0),
  upload_offset bigint NOT NULL DEFAULT 0 CHECK (upload_offset >= 0),
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  status text NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'completing', 'complete', 'failed', 'aborted')),
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX upload_session_expires_at_idx ON upload_session (expires_at)
  WHERE status = 'active';

CREATE TABLE upload_part (
  id uuid PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES upload_session (id) ON DELETE CASCADE,
  part_number integer NOT NULL CHECK (part_number >= 0),
  offset_bytes bigint NOT NULL CHECK (offset_bytes >= 0),
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  sha256 text NOT NULL,
  storage_key text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT upload_part_session_part UNIQUE (session_id, part_number)
);

CREATE TABLE outbox_event (
  id uuid PRIMARY KEY,
  aggregate_type text NOT NULL,
  aggregate_id text NOT NULL,
  event_type text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  idempotency_key text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  error_message text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT outbox_event_type_idempotency_key UNIQUE (event_type, idempotency_key)
);
CREATE INDEX outbox_event_pending_idx ON outbox_event (next_attempt_at)
  WHERE status = 'pending';
CREATE INDEX outbox_event_terminal_idx ON outbox_event (updated_at)
  WHERE status IN ('delivered', 'failed');

CREATE TABLE webhook_endpoint (
  id uuid PRIMARY KEY,
  url text NOT NULL,
  secret text NOT NULL,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  event_types text[] NOT NULL DEFAULT '{}',
  is_active boolean NOT NULL DEFAULT true,
  disabled_reason text NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_delivery (
  id uuid PRIMARY KEY,
  event_id uuid NOT NULL REFERENCES outbox_event (id) ON DELETE CASCADE,
  endpoint_id uuid NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  leased_until timestamptz,
  lease_owner text,
  last_status_code integer,
  last_error text NOT NULL DEFAULT '',
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhook_delivery_event_endpoint UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_delivery_due_idx ON webhook_delivery (next_attempt_at)
  WHERE status = 'pending';
CREATE INDEX webhook_delivery_endpoint_idx ON webhook_delivery (endpoint_id);

CREATE TABLE webhook_attempt (
  id uuid PRIMARY KEY,
  delivery_id uuid NOT NULL REFERENCES webhook_delivery (id) ON DELETE CASCADE,
  attempt_number integer NOT NULL,
  attempted_at timestamptz NOT NULL,
  status_code integer,
  duration_ms integer NOT NULL,
  error text NOT NULL DEFAULT '',
  response_body text NOT NULL DEFAULT '', -- first 500 bytes
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempt_delivery_idx ON webhook_attempt (delivery_id, attempt_number);

CREATE TABLE job_run (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_name text NOT NULL,
  tick timestamptz NOT NULL, -- the scheduled time; unique so a tick runs once across replicas
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
  owner text NOT NULL,
  error text NOT NULL DEFAULT '',
  finished_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT job_run_name_tick UNIQUE (job_name, tick)
);
