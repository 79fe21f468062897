"""Pure helpers that several stages share: event-time watermarks, name-based ids and the
friction signals of one event. No I/O and no clock, like every stage's own `core/`."""
