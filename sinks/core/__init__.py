"""The sink's decisions, with no I/O: which failures it waits out and which ClickHouse refused
for the data itself, how a refused batch is cut into pieces and what each piece is called,
and what a replay of dead letters may commit."""
