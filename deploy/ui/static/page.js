// The analysts' page: reads the JSON endpoints of `journeys ui` and draws them with ECharts.
// Every chart's data stays on `window.journeysPage.replies` (the browser tests compare it,
// and what ECharts draws, with SQL); the alerts are read again every few seconds.
"use strict";

const ALERTS_EVERY_MS = 3000;
const PANELS = ["funnel", "paths", "trend", "alerts", "person"];
const CHANNEL_COLORS = { web: "#2f6fde", app: "#d97706", call_center: "#2f855a", store: "#9f3fbf" };
const STATUS_COLORS = { firing: "#c53030", resolved: "#718096", retracted: "#cbd2d9" };
const KIND_COLORS = {
  touchpoint: "#2f6fde", stage: "#2f855a", journey: "#1f2933", dropoff: "#c53030",
  identity: "#9f3fbf", alert: "#d97706",
};

const page = { replies: {}, charts: {}, asked: {}, alertsTimer: null, alertsReads: 0 };
window.journeysPage = page;

function $(selector) {
  return document.querySelector(selector);
}

function chartOf(name) {
  if (!page.charts[name]) {
    page.charts[name] = echarts.init(document.getElementById(`${name}-chart`));
  }
  return page.charts[name];
}

function query(endpoint, extra) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...page.asked, ...extra })) {
    if (value) params.set(key, value);
  }
  if (endpoint !== "person") params.delete("id");
  return params;
}

async function read(endpoint, extra) {
  const response = await fetch(`/api/${endpoint}?${query(endpoint, extra)}`, {
    credentials: "same-origin",
  });
  const doc = await response.json();
  if (!response.ok) return { message: doc.error || `${response.status}`, rows: [] };
  return doc;
}

function show(name, reply, draw) {
  const panel = document.getElementById(name);
  const message = panel.querySelector(".message");
  page.replies[name] = reply;
  panel.querySelector(".csv").href = `/api/${name}?${query(name, { format: "csv" })}`;
  if (reply.message) {
    message.textContent = reply.message;
    message.hidden = false;
  } else {
    message.hidden = true;
  }
  const empty = !reply.rows || reply.rows.length === 0;
  panel.dataset.state = empty ? "empty" : "ready";
  if (!empty) {
    draw(chartOf(name), reply);
    chartOf(name).resize();
  }
}

function utc(value) {
  return value ? value.replace("T", " ").replace(/(\.\d+)?Z$/, "") : "";
}

function bucketLabel(value, seconds) {
  const text = utc(value);
  return seconds >= 86400 ? text.slice(0, 10) : text.slice(5, 16);
}

function drawFunnel(chart, reply) {
  const { stages, series } = reply.chart;
  chart.setOption({
    useUTC: true,
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: { top: 0 },
    grid: { left: 50, right: 20, top: 40, bottom: 30 },
    xAxis: { type: "category", data: stages },
    yAxis: { type: "value", name: "journeys" },
    series: series.map((s) => ({
      name: s.name, type: "bar", data: s.data, color: CHANNEL_COLORS[s.name],
      label: { show: true, position: "top", fontSize: 10 },
    })),
  }, true);
}

function drawPaths(chart, reply) {
  const { nodes, links } = reply.chart;
  chart.setOption({
    tooltip: { trigger: "item" },
    series: [{
      type: "sankey", nodeAlign: "right", left: 10, right: 150, top: 10, bottom: 10,
      emphasis: { focus: "adjacency" },
      lineStyle: { color: "gradient", opacity: 0.35 },
      label: { formatter: (p) => p.data.step, fontSize: 11 },
      data: nodes.map((n) => ({
        name: n.name, step: n.step,
        itemStyle: n.depth === 0 ? { color: "#c53030" } : { color: CHANNEL_COLORS[n.step.split(":")[0]] },
      })),
      links,
    }],
  }, true);
}

function drawTrend(chart, reply) {
  const { buckets, series, bucket_seconds: seconds } = reply.chart;
  chart.setOption({
    useUTC: true,
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: { top: 0 },
    grid: { left: 50, right: 20, top: 40, bottom: 30 },
    xAxis: { type: "category", data: buckets.map((b) => bucketLabel(b, seconds)) },
    yAxis: { type: "value", name: "drop-offs", minInterval: 1 },
    series: series.map((s) => ({ name: s.name, type: "bar", stack: "stages", data: s.data })),
  }, true);
}

function drawAlerts(chart, reply) {
  const { lanes, bars } = reply.chart;
  const data = bars.map((b) => ({
    value: [lanes.indexOf(b.lane), Date.parse(b.start), Date.parse(b.end || b.start), b.status],
    itemStyle: { color: STATUS_COLORS[b.status] || "#2f6fde" },
    bar: b,
  }));
  chart.setOption({
    useUTC: true,
    tooltip: {
      formatter: (p) => `${p.data.bar.status} · ${p.data.bar.severity}<br>${escapeHtml(p.data.bar.explanation)}`,
    },
    grid: { left: 170, right: 20, top: 10, bottom: 30 },
    xAxis: { type: "time" },
    yAxis: { type: "category", data: lanes, axisLabel: { width: 160, overflow: "truncate" } },
    series: [{
      type: "custom",
      encode: { x: [1, 2], y: 0 },
      renderItem: (params, api) => {
        const start = api.coord([api.value(1), api.value(0)]);
        const end = api.coord([api.value(2), api.value(0)]);
        const height = api.size([0, 1])[1] * 0.6;
        return {
          type: "rect",
          shape: { x: start[0], y: start[1] - height / 2, width: Math.max(end[0] - start[0], 4), height },
          style: api.style(),
        };
      },
      data,
    }],
  }, true);
  fillTable("#alerts-table", reply.rows, (row) => [
    utc(row.started_at), row.status, row.severity, row.series_name, row.team || "",
    [row.observed, "num"], [row.expected == null ? "" : row.expected.toFixed(1), "num"], row.explanation,
  ], (tr, row) => {
    tr.dataset.incidentId = row.incident_id;
    tr.className = row.status;
  });
}

function drawPerson(chart, reply) {
  const { lanes, series } = reply.chart;
  chart.setOption({
    useUTC: true,
    tooltip: { trigger: "item", formatter: (p) => `${utc(p.data[0])}<br>${escapeHtml(p.data[2])}` },
    legend: { top: 0 },
    grid: { left: 100, right: 20, top: 40, bottom: 30 },
    xAxis: { type: "time" },
    yAxis: { type: "category", data: lanes },
    series: series.map((s) => ({
      name: s.name, type: "scatter", symbolSize: 11, data: s.data, color: KIND_COLORS[s.name],
    })),
  }, true);
  fillTable("#person-table", reply.rows, (row) => [
    utc(row.at), row.kind, row.channel, row.what, row.touchpoint, row.detail,
  ]);
}

function escapeHtml(text) {
  const span = document.createElement("span");
  span.textContent = text == null ? "" : String(text);
  return span.innerHTML;
}

function fillTable(selector, rows, cells, decorate) {
  const body = $(`${selector} tbody`);
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    for (const cell of cells(row)) {
      const td = document.createElement("td");
      const [text, kind] = Array.isArray(cell) ? cell : [cell, ""];
      td.textContent = text == null ? "" : String(text);
      if (kind) td.className = kind;
      tr.appendChild(td);
    }
    if (decorate) decorate(tr, row);
    return tr;
  }));
}

const DRAW = { funnel: drawFunnel, paths: drawPaths, trend: drawTrend, alerts: drawAlerts, person: drawPerson };

async function load(name) {
  const panel = document.getElementById(name);
  panel.dataset.state = "loading";
  try {
    show(name, await read(name), DRAW[name]);
  } catch (error) {
    show(name, { message: `could not read ${name}: ${error}`, rows: [] }, DRAW[name]);
  }
}

async function pollAlerts() {
  try {
    const reply = await read("alerts");
    show("alerts", reply, drawAlerts);
    page.alertsReads += 1;
    $("#alerts-live").classList.remove("stale");
  } catch (error) {
    $("#alerts-live").classList.add("stale");
  }
}

function asUrl() {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(page.asked)) if (value) params.set(key, value);
  history.replaceState(null, "", `${location.pathname}${params.toString() ? "?" : ""}${params}`);
}

function readControls() {
  page.asked = {
    ...page.asked,
    definition: $("#definition").value,
    from: $("#from").value,
    to: $("#to").value,
    id: $("#person-id").value.trim(),
  };
}

function loadAll() {
  asUrl();
  for (const name of PANELS) {
    if (name !== "person" || page.asked.id) load(name);
  }
  clearInterval(page.alertsTimer);
  page.alertsTimer = setInterval(pollAlerts, ALERTS_EVERY_MS);
}

function dayStart(iso) {
  return iso.slice(0, 10) + "T00:00";
}

function nextDay(iso) {
  const day = new Date(Date.parse(iso.slice(0, 10) + "T00:00:00Z") + 86400000);
  return day.toISOString().slice(0, 10) + "T00:00";
}

async function start() {
  const given = new URLSearchParams(location.search);
  const meta = await read("meta");
  const select = $("#definition");
  for (const definition of Object.keys(meta.definitions || {}).sort()) {
    select.add(new Option(definition, definition));
  }
  if (meta.first) {
    $("#held").textContent = `ClickHouse holds ${meta.touchpoints.toLocaleString("en")} touchpoints from ${utc(meta.first).slice(0, 16)} to ${utc(meta.last).slice(0, 16)} UTC`;
  } else {
    $("#held").textContent = meta.message || "ClickHouse holds no touchpoints yet";
  }
  select.value = given.get("definition") || select.value;
  $("#from").value = given.get("from") || (meta.first ? dayStart(meta.first) : "");
  $("#to").value = given.get("to") || (meta.last ? nextDay(meta.last) : "");
  $("#person-id").value = given.get("id") || "";
  page.asked.limit = given.get("limit") || "";
  readControls();
  loadAll();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#controls").addEventListener("submit", (event) => {
    event.preventDefault();
    readControls();
    loadAll();
  });
  $("#person-form").addEventListener("submit", (event) => {
    event.preventDefault();
    readControls();
    asUrl();
    load("person");
  });
  window.addEventListener("resize", () => Object.values(page.charts).forEach((c) => c.resize()));
  start();
});
