-- As the SQLite store's schema 9: what an incident stands for (kind: a target, a storm of
-- targets, or the agent itself: monitoring impaired) and the members of storms, with what
-- their customers were last told of each (monitor.store.storms, monitor.policy.storms).
--
-- The partial unique index "one open incident per target" (0001) holds for the new kinds as
-- they name their targets: a storm by its name ("the outage of many services", "the outage
-- of group G": no configured target has a space), one open per name across the cluster;
-- the impairment alert as "watchdesk:impaired:<vantage>" (no configured target has a colon),
-- one open per vantage, so that one vantage's alert never stands for another's.

ALTER TABLE incidents ADD COLUMN kind TEXT NOT NULL DEFAULT 'target';

CREATE TABLE storm_members (
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    target TEXT NOT NULL,
    customer TEXT NOT NULL,
    joined_at DOUBLE PRECISION NOT NULL,
    first_failure_at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    left_at DOUBLE PRECISION,
    told TEXT NOT NULL DEFAULT 'none',
    PRIMARY KEY (incident_id, target)
);
