-- Coordination: shared state, tasks with review, threads, memory. Every change also appends
-- an event to the mesh log in the same transaction (see broker/src/coord).

-- array_to_string is only STABLE (it depends on the element type's output function); for
-- text[] it is immutable in fact, which generated search columns need.
CREATE FUNCTION plexus_words(text[]) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_to_string($1, ' ') $$;

-- Per-mesh counters for human-sized object numbers (task #12, thread #3, memory #40).
CREATE TABLE mesh_counters (
    mesh_id uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    name    text NOT NULL,
    value   bigint NOT NULL,
    PRIMARY KEY (mesh_id, name)
);

CREATE TABLE state_entries (
    mesh_id     uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    key         text NOT NULL,
    value       text NOT NULL,
    version     bigint NOT NULL,
    updated_by  uuid NOT NULL,
    updated_by_name text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, key)
);
-- Keys are listed by prefix; text_pattern_ops makes `LIKE 'prefix%'` an index range scan.
CREATE INDEX state_entries_prefix ON state_entries (mesh_id, key text_pattern_ops);

CREATE TABLE tasks (
    mesh_id     uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    number      bigint NOT NULL,
    title       text NOT NULL,
    description text NOT NULL DEFAULT '',
    complexity  text,
    files       text[] NOT NULL DEFAULT '{}',
    tags        text[] NOT NULL DEFAULT '{}',
    depends_on  bigint[] NOT NULL DEFAULT '{}',
    status      text NOT NULL,
    owner_id    uuid NOT NULL,
    owner_name  text NOT NULL,
    assignee_id uuid,
    assignee_name text,
    feedback    text,
    review_notes text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    search      tsvector GENERATED ALWAYS AS (
        to_tsvector('english', title || ' ' || description || ' ' || plexus_words(tags))) STORED,
    PRIMARY KEY (mesh_id, number)
);
CREATE INDEX tasks_status ON tasks (mesh_id, status);
CREATE INDEX tasks_search ON tasks USING gin (search);

CREATE TABLE task_history (
    mesh_id     uuid NOT NULL,
    number      bigint NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    uuid NOT NULL,
    actor_name  text NOT NULL,
    action      text NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    note        text,
    FOREIGN KEY (mesh_id, number) REFERENCES tasks(mesh_id, number) ON DELETE CASCADE
);
CREATE INDEX task_history_task ON task_history (mesh_id, number, at);

CREATE TABLE threads (
    mesh_id     uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    number      bigint NOT NULL,
    topic       text NOT NULL,
    priority    smallint NOT NULL,
    author_id   uuid NOT NULL,
    author_name text NOT NULL,
    waiting_on  uuid[] NOT NULL DEFAULT '{}',
    resolved_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, number)
);
CREATE INDEX threads_waiting ON threads USING gin (waiting_on);

CREATE TABLE thread_posts (
    mesh_id     uuid NOT NULL,
    number      bigint NOT NULL,
    post        integer NOT NULL,
    author_id   uuid NOT NULL,
    author_name text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    search      tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED,
    PRIMARY KEY (mesh_id, number, post),
    FOREIGN KEY (mesh_id, number) REFERENCES threads(mesh_id, number) ON DELETE CASCADE
);
CREATE INDEX thread_posts_search ON thread_posts USING gin (search);

CREATE TABLE memories (
    mesh_id     uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    number      bigint NOT NULL,
    body        text NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    author_id   uuid NOT NULL,
    author_name text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    search      tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', plexus_words(tags)), 'A') ||
        setweight(to_tsvector('english', body), 'B')) STORED,
    PRIMARY KEY (mesh_id, number)
);
CREATE INDEX memories_search ON memories USING gin (search);
