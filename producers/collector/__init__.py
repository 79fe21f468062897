"""The HTTP collector: Segment's tracking API (also as RudderStack's data plane) in front of `raw`.

Existing Segment and RudderStack SDKs send here by changing only their endpoint. The pure core
turns a request into touchpoints, rejections and an HTTP answer without any I/O:

- `protocol`: routes, body decoding (gzip, size limits), JSON and the HTTP error type;
- `auth`: where SDKs put the write key (HTTP Basic, `writeKey` in the body or the query);
- `ratelimit`: a token bucket per write key, clock passed in;
- `scrub`: raw e-mail addresses and phone numbers become keyed hashes before anything leaves;
- `properties`: nested property values flattened into the bounded properties map;
- `identifiers`: which trait and property names carry which identifier, per source;
- `places`: where a call happened (page path on the web, screen in apps), per source;
- `attribution`: page URL, referrer, UTM, user agent and masked IP of a call;
- `rules`: what one source declares, read once from its settings;
- `segment`: one Segment call to one touchpoint;
- `intake`: a whole request to an `Outcome` (status, answer, events, dead letters);
- `coalesce`: events of concurrent requests grouped into per-partition batches.

The adapters are `delivery` (Kafka acknowledgements, per request), `app` (the ASGI app),
`admin` (health and metrics on a port of their own), `metrics` and `server` (hypercorn's
HTTP/1.1 under our accept loop: header, idle, body and connection limits; workers).
"""
