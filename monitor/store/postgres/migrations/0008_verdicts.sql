-- Confirmation from several vantages (SCALEOUT.md "Several vantage points"): each vantage's
-- verdict on a target, one row per (target, vantage), written when it changes (and re-said
-- while a down waits for confirmation), never per probe: a healthy target writes nothing.
-- The quorum is counted under pg_advisory_xact_lock on the target, in the transaction that
-- inserts the incident.

CREATE TABLE verdicts (
    target TEXT NOT NULL,
    vantage TEXT NOT NULL,
    down BOOLEAN NOT NULL,
    since DOUBLE PRECISION NOT NULL,
    said_at DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (target, vantage)
);
