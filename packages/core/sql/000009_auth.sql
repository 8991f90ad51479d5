-- Accounts, sessions, applications and API keys (Auth, docs/auth.md).
-- No column holds a password, a refresh token or an API key: passwords are
-- argon2id hashes, tokens and keys SHA-256 hashes.

-- People. The email is unique whatever its case; it is kept as given.
CREATE TABLE _onepipe_auth_users (
  id uuid PRIMARY KEY,
  email text NOT NULL,
  -- argon2id, PHC string form
  password_hash text NOT NULL,
  roles jsonb NOT NULL DEFAULT '[]',
  disabled_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz
);

CREATE UNIQUE INDEX _onepipe_auth_users_email ON _onepipe_auth_users (lower(email));

-- A session is a family of refresh tokens: one login, then each refresh
-- spends a token and adds its successor. Revoking the family ends every
-- token in it and the access tokens that name it (their `sid`).
CREATE TABLE _onepipe_auth_sessions (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES _onepipe_auth_users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  -- logout | reuse | disabled | password | admin
  revoked_reason text
);

CREATE INDEX _onepipe_auth_sessions_user ON _onepipe_auth_sessions (user_id);

CREATE TABLE _onepipe_auth_refresh_tokens (
  -- SHA-256 of the token, hex
  token_hash text PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES _onepipe_auth_sessions (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  -- When it was exchanged for its successor; presented again after the
  -- reuse interval, it revokes the family.
  used_at timestamptz
);

CREATE INDEX _onepipe_auth_refresh_tokens_session ON _onepipe_auth_refresh_tokens (session_id);
CREATE INDEX _onepipe_auth_refresh_tokens_expiry ON _onepipe_auth_refresh_tokens (expires_at);

-- Programs that call the app with API keys.
CREATE TABLE _onepipe_auth_applications (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  disabled_at timestamptz
);

CREATE TABLE _onepipe_auth_api_keys (
  id uuid PRIMARY KEY,
  application_id uuid NOT NULL REFERENCES _onepipe_auth_applications (id) ON DELETE CASCADE,
  name text NOT NULL,
  -- The visible part of the key (op_<prefix>_…), how a key is found.
  prefix text NOT NULL UNIQUE,
  -- SHA-256 of the whole key, hex
  key_hash text NOT NULL,
  roles jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  disabled_at timestamptz,
  -- Set on a key replaced by rotate() with an overlap: it works until then.
  expires_at timestamptz,
  replaced_by uuid
);

CREATE INDEX _onepipe_auth_api_keys_application ON _onepipe_auth_api_keys (application_id);
