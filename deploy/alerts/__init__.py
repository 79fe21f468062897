"""`journeys alerts`: reading alerts from ClickHouse, silences and test pages; the shipped
routing file (`routing.toml`)."""
