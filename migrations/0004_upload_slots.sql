-- Uploads in flight, one row each, so PORTAL_MAX_CONCURRENT_UPLOADS_PER_USER holds across
-- replicas. A row is a lease: its process renews it while the upload runs and deletes it at the
-- end; a killed process's rows stop counting once their lease has run out.
CREATE TABLE upload_slot (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  lease_until timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX upload_slot_user_idx ON upload_slot (user_id, lease_until);
