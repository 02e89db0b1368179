-- As the SQLite store's schema 9: the priority the helpdesk last showed on an incident's own
-- ticket (a change from it is a person's). Rows from before: the priority the ticket was
-- created with, from its create action while the outbox keeps it; else NULL (the first
-- reading is taken as it stands).

ALTER TABLE incidents ADD COLUMN ticket_priority TEXT;

UPDATE incidents SET ticket_priority = created.payload -> 'draft' ->> 'priority'
FROM (
    SELECT DISTINCT ON (incident_id) incident_id, payload FROM outbox
    WHERE channel = 'ticket' AND operation = 'create' AND notice IS NULL
    ORDER BY incident_id, id
) AS created
WHERE created.incident_id = incidents.id AND incidents.ticket_priority IS NULL;
