-- Several agents on one database (SCALEOUT.md): each agent registers and heartbeats in its
-- lease renew (the live ones of a vantage share its slots), and one of them holds the
-- coordinator lease that the singletons (policy sweep, polls, reports) run under. Expiries
-- are the database's time; epochs fence the writes of an agent that lost a lease.

CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    vantage TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    listen TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX agents_by_vantage ON agents (vantage, heartbeat_at);

CREATE TABLE coordinator_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT,
    epoch BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
);
INSERT INTO coordinator_lease (id) VALUES (1);

CREATE INDEX shard_lease_by_owner ON shard_lease (owner, vantage);
