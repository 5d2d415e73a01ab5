-- mailblast schema, version 1: campaigns, recipients and the import chunk ledger.
--
-- Applied by `mailblast db upgrade` inside one transaction (see migrate.py); never by hand.

CREATE TABLE notification_campaigns (
    id                  uuid        PRIMARY KEY,
    name                text        NOT NULL,
    from_address        text        NOT NULL,
    subject             text        NOT NULL,
    body_text           text        NOT NULL,
    body_html           text,
    scheduled_at        timestamptz NOT NULL,
    status              text        NOT NULL
        CONSTRAINT notification_campaigns_status_check CHECK (status IN (
            'importing', 'import_failed', 'scheduled', 'sending', 'completed', 'send_failed'
        )),
    s3_key              text        NOT NULL,
    -- The import swap is a flip of these two pointers (one row, one statement): its cost
    -- does not depend on the size of the list.
    current_import_id   uuid,
    pending_import_id   uuid,
    total_count         integer     NOT NULL DEFAULT 0 CHECK (total_count >= 0),
    sent_count          integer     NOT NULL DEFAULT 0 CHECK (sent_count >= 0),
    failed_count        integer     NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    bounced_count       integer     NOT NULL DEFAULT 0 CHECK (bounced_count >= 0),
    import_execution_id text,
    send_execution_id   text,
    last_error          text,
    -- Every status change is a compare-and-set on (status, version).
    version             integer     NOT NULL CHECK (version > 0),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);

-- list_page: newest first, keyset on (created_at, id).
CREATE INDEX notification_campaigns_created_idx
    ON notification_campaigns (created_at DESC, id DESC);
-- with_status: resuming work after a restart looks at the few unfinished campaigns.
CREATE INDEX notification_campaigns_status_idx
    ON notification_campaigns (status);


-- No foreign key to notification_campaigns: COPY would fire one RI trigger per row
-- (a large share of the import's cost), and campaigns are never deleted.
CREATE TABLE notification_recipients (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id uuid        NOT NULL,
    import_id   uuid        NOT NULL,
    chunk_no    integer     NOT NULL,
    email       text        NOT NULL,
    attributes  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status      text        NOT NULL DEFAULT 'pending'
        CONSTRAINT notification_recipients_status_check CHECK (status IN (
            'pending', 'sent', 'failed', 'bounced'
        )),
    message_id  text,
    error       text,
    -- The send attempt holding the recipient while SES is called (see RecipientRepo.claim).
    claim_token text,
    claimed_at  timestamptz,
    updated_at  timestamptz
);

-- One index serves every per-import read: status counts (an index-only scan over the
-- (campaign_id, import_id) prefix, already grouped by status), keyset pages of pending
-- recipients and of any one status (ordered by id, no sort), the page plan, the lease
-- sweep, and DELETE of an old import. Each extra index costs the import's COPY and
-- every recorded result, so there is no other one on these columns.
CREATE INDEX notification_recipients_import_status_idx
    ON notification_recipients (campaign_id, import_id, status, id);

-- Bounce and complaint events name the SES MessageId only. Partial: rows not sent yet
-- (the whole import at COPY time) cost nothing here.
CREATE INDEX notification_recipients_message_id_idx
    ON notification_recipients (message_id)
    WHERE message_id IS NOT NULL;

-- Index-only counts need a fresh visibility map; imports insert in bulk, so vacuum
-- after inserts sooner than the defaults would (no effect where autovacuum is off).
ALTER TABLE notification_recipients SET (
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_vacuum_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05
);


-- Which chunks of an import were inserted. A retried (or concurrently repeated) chunk
-- insert locks its ledger row first, so two copies of one chunk are serialized and the
-- second replaces the first; a first insert skips the DELETE entirely.
CREATE TABLE notification_import_chunks (
    campaign_id uuid        NOT NULL,
    import_id   uuid        NOT NULL,
    chunk_no    integer     NOT NULL,
    row_count   integer     NOT NULL,
    attempts    integer     NOT NULL DEFAULT 1,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, import_id, chunk_no)
);
