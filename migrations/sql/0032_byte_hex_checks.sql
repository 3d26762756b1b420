-- Hex checks over bytes, not characters (issue 17: PostgreSQL's CPU per ingested event).
--
-- Migration 0019 checks media_region.sha256 and pii_subject_key.subject, written by every
-- ingest batch (~80 regions and ~30 subjects per 100 events), as `length(v) = 64 AND
-- ltrim(v, '0123456789abcdef') = ''`. In a UTF-8 database text's ltrim takes its multibyte
-- path: it splits both strings into characters and compares each of the 64 with each of the
-- 16, ~3.5 us a row (media_region rows on a scratch table, 100 a statement: 1,130-1,146 us
-- with the check against 768-879 without it). The same test over the bytes, `ltrim(bytea,
-- bytea)` on `textsend(v)` (the text's bytes, no copy through an encoding), costs next to
-- nothing (673-999 us with it).
--
-- It accepts exactly the same values: every byte a lowercase hex digit means every character
-- is one (ASCII), and then 64 bytes are 64 characters; a multibyte character fails both. NULL
-- passes both ways (both columns are NOT NULL). The constraints keep their names; as in 0019,
-- the old one goes and the new one is added NOT VALID and validated under a lock that lets
-- writes go on.
SET LOCAL lock_timeout = '5s';

ALTER TABLE media_region DROP CONSTRAINT media_region_sha256_check;
ALTER TABLE media_region ADD CONSTRAINT media_region_sha256_check
    CHECK (octet_length(sha256) = 64
           AND ltrim(textsend(sha256), '\x30313233343536373839616263646566'::bytea) = ''::bytea)
    NOT VALID;
ALTER TABLE media_region VALIDATE CONSTRAINT media_region_sha256_check;

ALTER TABLE pii_subject_key DROP CONSTRAINT pii_subject_key_subject_check;
ALTER TABLE pii_subject_key ADD CONSTRAINT pii_subject_key_subject_check
    CHECK (octet_length(subject) = 64
           AND ltrim(textsend(subject), '\x30313233343536373839616263646566'::bytea) = ''::bytea)
    NOT VALID;
ALTER TABLE pii_subject_key VALIDATE CONSTRAINT pii_subject_key_subject_check;
