-- Identity: OAuth2 clients of agency systems, console users, rotating refresh tokens and the
-- ES256 keys that sign access tokens. Secrets are never stored in the clear: client secrets and
-- passwords as argon2id hashes, refresh tokens as SHA-256 (they are 256 random bits), TOTP
-- secrets and private keys sealed with AES-256-GCM under the identity key in HUB_SECRETS_DIR.
SET LOCAL lock_timeout = '5s';

CREATE TABLE oauth_client (
    client_id     text PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 128),
    secret_hash   text NOT NULL,
    agency        text,
    roles         text[] NOT NULL,
    jurisdictions text[] NOT NULL DEFAULT '{}',
    clearance     integer NOT NULL DEFAULT 0 CHECK (clearance BETWEEN 0 AND 10),
    purpose       text,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);

CREATE TABLE console_user (
    username      text PRIMARY KEY CHECK (length(username) BETWEEN 1 AND 128),
    password_hash text NOT NULL,
    totp_secret   bytea,
    roles         text[] NOT NULL,
    agency        text,
    jurisdictions text[] NOT NULL DEFAULT '{}',
    clearance     integer NOT NULL DEFAULT 0 CHECK (clearance BETWEEN 0 AND 10),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at    timestamptz NOT NULL,
    disabled_at   timestamptz,
    -- Admins must have a second factor (enforced here as well as by `hub users add`).
    CHECK (NOT ('admin' = ANY (roles)) OR totp_secret IS NOT NULL)
);

-- One row per refresh token; a family is one login. Using a token marks it used and issues the
-- next one in the family; presenting a used token again revokes the whole family (theft).
CREATE TABLE refresh_token (
    token_hash    bytea PRIMARY KEY,
    family_id     uuid NOT NULL,
    username      text NOT NULL REFERENCES console_user (username) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX refresh_token_family_idx ON refresh_token (family_id);
CREATE INDEX refresh_token_username_idx ON refresh_token (username);

-- Access-token signing keys. The newest unretired key signs; a retired key still verifies
-- until `verify_until` (retirement + the longest token lifetime), then leaves the JWKS.
CREATE TABLE jwt_signing_key (
    kid           text PRIMARY KEY,
    public_jwk    jsonb NOT NULL,
    private_key   bytea NOT NULL,
    created_at    timestamptz NOT NULL,
    retired_at    timestamptz,
    verify_until  timestamptz
);
