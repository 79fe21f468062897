"""`journeys watch`: a stalled worker cannot report on itself, so a separate process watches
every consumer group's committed offsets and lag (ARCHITECTURE.md, "How every stage runs")."""
