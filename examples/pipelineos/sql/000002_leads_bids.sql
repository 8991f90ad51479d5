-- Leads ask for bids; a bid prices one blueprint for one lead, once; each
-- proposal sent is recorded as a response.
CREATE TABLE leads (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  company text,
  phone text,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bids (
  id uuid PRIMARY KEY,
  blueprint_id uuid NOT NULL REFERENCES blueprints (id),
  lead_id uuid NOT NULL REFERENCES leads (id),
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'priced', 'rendered', 'sent')),
  quote jsonb,
  total_cents bigint CHECK (total_cents >= 0),
  currency text,
  pdf bytea,
  requested_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  UNIQUE (blueprint_id, lead_id)
);

CREATE TABLE responses (
  id uuid PRIMARY KEY,
  bid_id uuid NOT NULL REFERENCES bids (id),
  lead_id uuid NOT NULL REFERENCES leads (id),
  channel text NOT NULL CHECK (channel IN ('email')),
  recipient text NOT NULL,
  subject text NOT NULL,
  message_id text NOT NULL,
  -- 'smtp' when SMTP_URL was set, else 'recorded': the whole message kept here instead of sent.
  transport text NOT NULL,
  raw_message text,
  sent_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (bid_id, channel)
);
