"""Privacy operations behind `journeys privacy`: who a request is about (`scope`), what is held
about them (`export`), and removing it everywhere (`erasure`)."""
