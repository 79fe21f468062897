"""Pure decisions of the privacy operations in the stream: no I/O, no clock."""
