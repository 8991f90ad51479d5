-- Blueprints and what their analysis found. The file itself lives in a table
-- of its own (bytea), so listing or reading a blueprint never drags its bytes.
CREATE TABLE blueprints (
  id uuid PRIMARY KEY,
  filename text NOT NULL,
  mime text NOT NULL CHECK (mime IN ('application/pdf', 'image/png', 'image/jpeg')),
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  sha256 text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'analyzing', 'analyzed', 'failed')),
  -- The pipeline run that analyses it now; reports of another run are refused.
  pipeline_id uuid,
  requeues int NOT NULL DEFAULT 0,
  provider text,
  error jsonb,
  uploaded_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  analyzed_at timestamptz
);
CREATE INDEX blueprints_status_idx ON blueprints (status, updated_at);
CREATE INDEX blueprints_created_idx ON blueprints (created_at DESC, id);

CREATE TABLE blueprint_files (
  blueprint_id uuid PRIMARY KEY REFERENCES blueprints (id) ON DELETE CASCADE,
  content bytea NOT NULL
);

CREATE TABLE blueprint_fixtures (
  blueprint_id uuid NOT NULL REFERENCES blueprints (id) ON DELETE CASCADE,
  position int NOT NULL,
  kind text NOT NULL,
  quantity int NOT NULL CHECK (quantity > 0),
  room text,
  confidence_pct int NOT NULL CHECK (confidence_pct BETWEEN 0 AND 100),
  PRIMARY KEY (blueprint_id, position)
);
