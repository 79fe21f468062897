"""ClickHouse's HTTP interface over the embedded engine: the process that owns a chDB folder
serves it, so analysts, BI tools and other processes read (and insert) while it runs."""
