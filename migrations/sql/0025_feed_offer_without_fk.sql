-- feed_offer loses its foreign key to feed_entry (issue 17): retention deletes a position's
-- offers itself (hub/retention/repository.py), in the statement that deletes the position.
--
-- The key made every offer a fill inserts run a referential check: a SELECT ... FOR KEY
-- SHARE of its feed_entry row, and with several audiences filling over the same positions,
-- a MultiXact for each row they share. Measured on 20,000 positions: 12-14 us per offer
-- inserted with the key, 6.3-6.9 without. In bench/feeds.py's walk (three readers paging a
-- 100,000-event feed) the fills were the largest statement of PostgreSQL's time per page,
-- twice the page query itself.
--
-- Without the key an offer may outlive its position in one race: a fill inserting offers over
-- positions a retention sweep is deleting at that moment. Such an offer names nothing: pages
-- reach events through feed_entry, so it is never read, and it goes with its audience
-- (revision change or pruning). The key to feed_audience stays (audiences are few; pruning
-- relies on its cascade).
SET LOCAL lock_timeout = '5s';

ALTER TABLE feed_offer DROP CONSTRAINT IF EXISTS feed_offer_seq_fkey;
