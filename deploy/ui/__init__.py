"""The analysts' page (`journeys ui`): a read-only page of charts over the analysts' views,
served by the same raw-ASGI-on-uvicorn stack as the collector.

Pure logic: what a request asks (`asking`), who may ask (`access`), the page's own SQL beside
`deploy.query.questions` (`questions`), and how answers become chart data (`charts`). I/O:
`answering` reads ClickHouse through `sinks.clickhouse.reading` (via `deploy.query.reader`),
`app` is the ASGI application, `server` wires it from the settings. The page itself (HTML,
script, style, and the charting library with its licence) is in `static/`.
"""
