// Sends calls through the real Segment or RudderStack Node SDK, as an application would:
// only the host changes. Reads {"sdk", "host", "writeKey", "calls": [{"type", ...}]} as JSON
// on stdin; a call's "timestamp" (ISO-8601) becomes a Date. Exits 1 if the SDK reports an
// error. Run with NODE_PATH pointing at the installed SDKs (make setup: .local/node-sdks).
"use strict";

const { Analytics: Segment } = require("@segment/analytics-node");
const Rudder = require("@rudderstack/rudder-sdk-node");

function read(stream) {
  return new Promise((resolve, reject) => {
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => (text += chunk));
    stream.on("end", () => resolve(text));
    stream.on("error", reject);
  });
}

function asSdkCall(call) {
  const { type, ...fields } = call;
  if (fields.timestamp) fields.timestamp = new Date(fields.timestamp);
  return [type, fields];
}

async function withSegment(plan, errors) {
  const client = new Segment({ writeKey: plan.writeKey, host: plan.host, flushAt: 50, maxRetries: 1 });
  client.on("error", (err) => errors.push(String(err && (err.reason || err.message || err))));
  for (const call of plan.calls) {
    const [type, fields] = asSdkCall(call);
    client[type](fields);
  }
  await client.closeAndFlush({ timeout: 30000 });
}

async function withRudder(plan, errors) {
  const client = new Rudder(plan.writeKey, {
    dataPlaneUrl: plan.host,
    flushAt: 50,
    flushInterval: 60000,
    logLevel: "error",
    errorHandler: (err) => errors.push(String(err && (err.message || err))),
  });
  for (const call of plan.calls) {
    const [type, fields] = asSdkCall(call);
    client[type](fields, (err) => err && errors.push(String(err.message || err)));
  }
  await client.flush();
}

async function main() {
  const plan = JSON.parse(await read(process.stdin));
  const errors = [];
  await (plan.sdk === "segment" ? withSegment : withRudder)(plan, errors);
  if (errors.length) {
    console.error(errors.join("\n"));
    process.exit(1);
  }
  console.log(`sent ${plan.calls.length} calls with ${plan.sdk}`);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
