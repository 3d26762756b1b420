-- Media regions (issue 14): redaction is a property of the released image, not of the event
-- that asked for it. Every region anyone knows on a stored image is kept here, keyed by the
-- image's hash: the boxes of every event that references it (source 'edge', recorded in the
-- ingest transaction) and the boxes of the hub's own scan (source 'hub'). Release blurs the
-- union of the regions of the classes the recipient must not see in clear.
--
-- Why keyed by sha256 and not by event: a face event and a plate event share one snapshot,
-- and a later event may reference an existing image with no face box at all; blurring per
-- event let whichever event was asked (the newest) decide. Regions outlive the events that
-- reported them (retention may drop an event while another still needs the image) and go
-- with the image itself (trigger below). No foreign key: an event may name an image before
-- its upload arrives, and its regions must not be lost in that race.
SET LOCAL lock_timeout = '5s';

CREATE TABLE media_region (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    source       text NOT NULL CHECK (source IN ('edge', 'hub')),
    label        text NOT NULL,
    -- Normalised (0..1), origin top-left. A crop (MediaRef kind 'crop') has no coordinates
    -- within its frame, so each class of the referencing event covers the whole crop.
    x            double precision NOT NULL CHECK (x >= 0 AND x <= 1),
    y            double precision NOT NULL CHECK (y >= 0 AND y <= 1),
    width        double precision NOT NULL CHECK (width >= 0 AND width <= 1),
    height       double precision NOT NULL CHECK (height >= 0 AND height <= 1),
    -- The event that reported an edge region (NULL for the hub's scan).
    node_id      uuid,
    event_id     uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((source = 'edge') = (event_id IS NOT NULL))
);
CREATE INDEX media_region_sha256_idx ON media_region (sha256);

-- The hub's scan: when it ran (NULL: not yet; release withholds the image from every
-- recipient whose policy blurs anything), with what, and why it failed if it did (a failed
-- scan counts as not scanned).
ALTER TABLE media_object
    ADD COLUMN scanned_at  timestamptz,
    ADD COLUMN scanned_by  text,
    ADD COLUMN scan_error  text;
CREATE INDEX media_object_unscanned_idx ON media_object (created_at) WHERE scanned_at IS NULL;

CREATE FUNCTION media_region_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM media_region r USING gone g WHERE r.sha256 = g.sha256;
    RETURN NULL;
END;
$$;
CREATE TRIGGER media_object_forget_regions
    AFTER DELETE ON media_object REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION media_region_forget();

-- Events stored before this migration: their boxes become edge regions now (the payload
-- keeps boxes; only attributes went to the PII vault).
INSERT INTO media_region (sha256, source, label, x, y, width, height, node_id, event_id)
SELECT DISTINCT m.value ->> 'sha256', 'edge', d.value ->> 'label',
       CASE WHEN m.value ->> 'kind' = 'crop' THEN 0 ELSE (d.value #>> '{box,x}')::float8 END,
       CASE WHEN m.value ->> 'kind' = 'crop' THEN 0 ELSE (d.value #>> '{box,y}')::float8 END,
       CASE WHEN m.value ->> 'kind' = 'crop' THEN 1 ELSE (d.value #>> '{box,width}')::float8 END,
       CASE WHEN m.value ->> 'kind' = 'crop' THEN 1 ELSE (d.value #>> '{box,height}')::float8 END,
       e.node_id, e.event_id
FROM detection_event e
CROSS JOIN LATERAL jsonb_array_elements(coalesce(e.payload -> 'media', '[]'::jsonb)) AS m(value)
CROSS JOIN LATERAL jsonb_array_elements(coalesce(e.payload -> 'detections', '[]'::jsonb)) AS d(value)
WHERE m.value ->> 'sha256' ~ '^[0-9a-f]{64}$';
