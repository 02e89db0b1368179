-- As the SQLite store's schema 7: the tier an incident has reached and the SLA targets in
-- force when it opened; scheduled reports, claimed per (report, period) before the mail leaves.

ALTER TABLE incidents ADD COLUMN tier TEXT NOT NULL DEFAULT 'L1';
ALTER TABLE incidents ADD COLUMN response_target DOUBLE PRECISION;
ALTER TABLE incidents ADD COLUMN resolution_target DOUBLE PRECISION;
ALTER TABLE incidents ADD COLUMN sla_clock TEXT;
UPDATE incidents SET tier = 'L' || (escalation_level + 1) WHERE escalation_level > 0;

CREATE TABLE reports_known (
    report TEXT PRIMARY KEY,
    since DOUBLE PRECISION NOT NULL
);

CREATE TABLE reports_sent (
    report TEXT NOT NULL,
    period_start DOUBLE PRECISION NOT NULL,
    period_end DOUBLE PRECISION NOT NULL,
    scheduled_at DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL,
    claimed_at DOUBLE PRECISION NOT NULL,
    sent_at DOUBLE PRECISION,
    recipients TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (report, period_start, period_end)
);
