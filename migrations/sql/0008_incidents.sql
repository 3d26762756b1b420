-- Incidents (issue 8): cases an officer runs from report to evidence export. Expand step
-- only: three new tables, nothing in use is touched. Legal holds live with retention (0007).

CREATE TABLE incident (
    id           uuid PRIMARY KEY,
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'investigating', 'closed')),
    assignee     text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    closed_at    timestamptz,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX incident_status_idx ON incident (status, created_at);

-- The timeline: notes, status changes, assignments and links, in the order they happened.
CREATE TABLE incident_note (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  uuid NOT NULL REFERENCES incident (id),
    at           timestamptz NOT NULL DEFAULT now(),
    author       text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('note', 'status', 'assign', 'link')),
    body         text NOT NULL CHECK (length(body) <= 10000)
);
CREATE INDEX incident_note_incident_idx ON incident_note (incident_id, id);

-- Events linked to an incident. The event's primary key is kept (not a foreign key: event
-- partitions may be dropped by retention, which must then see the hold first).
CREATE TABLE incident_event (
    incident_id  uuid NOT NULL REFERENCES incident (id),
    event_id     uuid NOT NULL,
    event_pk     bigint NOT NULL,
    captured_at  timestamptz NOT NULL,
    linked_at    timestamptz NOT NULL DEFAULT now(),
    linked_by    text NOT NULL,
    PRIMARY KEY (incident_id, event_id)
);
