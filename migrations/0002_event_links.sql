-- File events keep no download link (a bearer credential: a presigned S3 URL or a Portal
-- signature) in the outbox. The payload keeps `link_expires`, the file's expiry in unix
-- seconds; the link is signed from it when the event is sent (src/uploads/download_links.ts).
-- Events written before this migration carry `url`: replace it the same way.
UPDATE outbox_event AS e
   SET payload = (e.payload - 'url') || jsonb_build_object(
         'link_expires',
         floor(extract(epoch FROM coalesce(f.expires_at, f.created_at + interval '3650 days')))::bigint),
       updated_at = now()
  FROM upload_file AS f
 WHERE e.event_type IN ('file.stored', 'file.expiring')
   AND e.payload ? 'url'
   AND f.id::text = e.payload->>'file_id';
