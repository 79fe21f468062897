"""The views analysts read, over the tables of `sinks/tables.py`.

Each is `CREATE OR REPLACE VIEW`: a view fixes its columns when it is made, so the migration
re-creates every one after the tables change.
"""

from __future__ import annotations

VIEWS = {
    "touchpoints_latest": """
CREATE OR REPLACE VIEW touchpoints_latest AS
SELECT t.*,
       if(o.identifier = '', t.person_id, o.person_id) AS latest_person_id
FROM touchpoints AS t FINAL
LEFT JOIN (
    SELECT identifier, argMax(person_id, version) AS person_id
    FROM identity_overrides
    GROUP BY identifier
) AS o ON o.identifier = t.person_key
""",
    "journeys_latest": """
CREATE OR REPLACE VIEW journeys_latest AS
SELECT j.*,
       if(p.latest_person_id = '', j.person_id, p.latest_person_id) AS latest_person_id
FROM journeys AS j FINAL
LEFT JOIN (
    SELECT journey_id AS started_journey_id, argMin(event_id, at) AS started_by
    FROM journey_transitions FINAL
    WHERE from_stage IS NULL AND NOT retracted
    GROUP BY journey_id
) AS t ON t.started_journey_id = j.journey_id
LEFT JOIN (
    SELECT toString(event_id) AS started_by, latest_person_id FROM touchpoints_latest
) AS p ON p.started_by = t.started_by
""",
    "dropoffs_standing": """
CREATE OR REPLACE VIEW dropoffs_standing AS
SELECT * FROM dropoffs FINAL WHERE NOT retracted
""",
}
"""Views over the tables. `touchpoints_latest` resolves every touchpoint to its person's latest
id: the override of the identifier that routed it, if it ever changed person, else the person
stamped at processing time (which then is still right: see docs/stages/identity.md).
`journeys_latest` does the same for journeys, through the event that started each one: the
stage carries a person's journeys over when a merge arrives while it still holds them, but a
customer may log in days after a journey ended and was forgotten. Its joined columns are
named apart from the journey's, so it keeps the table's names (`journey_id`, not
`` `j.journey_id` ``). `dropoffs_standing` is
the drop-offs that no retraction cancelled."""
