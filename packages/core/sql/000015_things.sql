-- Things (docs/things.md): typed entities of the semantic layer, one table for
-- every Things store and noun, the user's fields in `data`.
--
-- The key is (things_name, type, id): two stores or two nouns may use the
-- same id. Those three columns use the "C" collation, so ids order by their
-- bytes whatever the database's collation is: list pages ordered by $id are
-- the same on every server, and that order comes straight from the primary
-- key instead of a sort.
--
-- `version` starts at 1 and grows by 1 with every change, for optimistic
-- concurrency (update with { version }). Times are the database clock's,
-- truncated to milliseconds when written, so the ISO strings handed out
-- (millisecond precision) compare equal to what is stored.
--
-- No index on `data` here: the indexes a noun declares are expression
-- indexes on `(data #>> '{path}') COLLATE "C"`, partial to that store and
-- noun, created when the store is attached (their names come from a hash of
-- store, noun and path).
CREATE TABLE _onepipe_things (
  things_name text COLLATE "C" NOT NULL,
  type text COLLATE "C" NOT NULL,
  id text COLLATE "C" NOT NULL,
  data jsonb NOT NULL,
  version bigint NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  -- Set by a soft delete, cleared by restore; hidden from list unless asked.
  deleted_at timestamptz,
  PRIMARY KEY (things_name, type, id),
  -- Every Thing is an object of fields (the $-fields are added on the way out).
  CONSTRAINT _onepipe_things_data_object CHECK (jsonb_typeof(data) = 'object')
);
