"""The HTTP interface's decisions, with no I/O: what a request asks, who may ask it, what an
error answers, and how a body is encoded."""
