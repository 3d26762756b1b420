-- Append to the audit chain in one server-side call: take the chain lock, read the head,
-- hash and insert, without a client round trip in between. The lock is then held only for
-- this call and the commit that follows it (ADR 0004).
--
-- hash = sha256(prev_hash || int8send(seq) || body), where body is the canonical JSON of the
-- entry (without seq) that the hub computes; `hub audit verify` recomputes the same bytes.
CREATE FUNCTION audit_append(
    p_at timestamptz, p_actor text, p_action text, p_target text, p_detail jsonb,
    p_decision_id text, p_trace_id text, p_body bytea
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_prev bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(7527030514016150633);  -- 0x6875625F61756469, "hub_audi"
    SELECT seq, hash INTO v_seq, v_prev FROM audit_log ORDER BY seq DESC LIMIT 1;
    IF v_seq IS NULL THEN
        v_seq := 0;
        v_prev := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    END IF;
    v_seq := v_seq + 1;
    INSERT INTO audit_log (seq, at, actor, action, target, detail, decision_id, trace_id,
                           prev_hash, hash)
    VALUES (v_seq, p_at, p_actor, p_action, p_target, p_detail, p_decision_id, p_trace_id,
            v_prev, sha256(v_prev || int8send(v_seq) || p_body));
    RETURN v_seq;
END;
$$;
