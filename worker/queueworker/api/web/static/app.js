// The web view of `queueworker api` (routes.py says why it is built this way).
// Data: one server-sent-event stream, /ui/stream, read with fetch (EventSource cannot send
// the Authorization header). Everything shown is set with textContent, never as HTML.
"use strict";

const KEY = "queueworker.token";
const $ = (sel) => document.querySelector(sel);
const enc = encodeURIComponent;
let token = sessionStorage.getItem(KEY) || "";
let admin = false;
let controller = null;

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function ago(ts) {
  if (!ts) return "—";
  const s = Date.now() / 1000 - ts;
  if (s < 0) return "in " + span(-s);
  return span(s) + " ago";
}

function span(s) {
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function flash(text, bad) {
  const f = $("#flash");
  f.textContent = text;
  f.className = bad ? "flash bad" : "flash";
  f.hidden = false;
}

async function call(method, path, what) {
  const r = await fetch(path, { method, headers: headers() });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const detail = body && body.detail ? body.detail : r.statusText;
    flash(`${what}: refused (${r.status}): ${typeof detail === "string" ? detail : JSON.stringify(detail)}`, true);
    return null;
  }
  flash(`${what}: done`, false);
  return body;
}

function button(label, method, path, what) {
  const b = el("button", { type: "button", "data-action": label }, label);
  b.addEventListener("click", async () => {
    b.disabled = true;
    await call(method, path, what);
  });
  return b;
}

// A job's hash (GET /v1/jobs/ID), or for a failed job its error and traceback (admin).
async function showJob(id, failed) {
  const pre = $("#job-detail");
  $("#job-id").value = id;
  const body = await call("GET", failed ? `/v1/failed/${enc(id)}` : `/v1/jobs/${enc(id)}`, `job ${id}`);
  pre.textContent = body ? JSON.stringify(body, null, 2) : "";
  pre.hidden = !body;
}

function jobLink(id, failed) {
  const a = el("a", { class: "job id", href: "#job-detail", "data-show": id }, id);
  a.addEventListener("click", (ev) => { ev.preventDefault(); showJob(id, failed); });
  return a;
}

function fill(id, rows) {
  const body = $(`#${id} tbody`);
  body.replaceChildren(...rows);
  if (!rows.length) {
    const n = $(`#${id} thead tr`).children.length;
    body.append(el("tr", {}, el("td", { colSpan: n, class: "note" }, "none")));
  }
}


function queueRow(q) {
  const chips = Object.entries(q.by_priority || {})
    .filter(([, n]) => n > 0)
    .sort((a, b) => Number(b[0]) - Number(a[0]))
    .map(([p, n]) => el("span", { class: "chip" }, `p${p}: ${n}`));
  const s = q.stats || {};
  const actions = admin ? el("td", { class: "admin" },
    q.paused ? button("resume", "POST", `/v1/queues/${enc(q.queue)}/resume`, `resume ${q.queue}`)
             : button("pause", "POST", `/v1/queues/${enc(q.queue)}/pause`, `pause ${q.queue}`)) : null;
  return el("tr", { "data-queue": q.queue },
    el("td", {}, q.queue), el("td", { class: "num waiting" }, q.waiting), el("td", {}, ...chips),
    el("td", { class: "num" }, q.delayed), el("td", { class: "num" }, q.in_flight),
    el("td", {}, q.oldest_waiting_seconds == null ? "—" : span(q.oldest_waiting_seconds)),
    el("td", { class: "num" }, s.completed ?? 0), el("td", { class: "num" }, s.failed ?? 0),
    el("td", q.paused ? { class: "paused" } : {}, q.paused ? "paused" : "running"), actions);
}

function workerRow(w) {
  const jobs = w.in_flight.map((j) => el("div", { "data-job": j.id },
    jobLink(j.id, false), ` (${j.queue}, ${ago(j.started_at)})`));
  return el("tr", { "data-worker": w.id },
    el("td", { class: "id" }, w.id), el("td", {}, w.pod), el("td", {}, w.state),
    el("td", {}, w.queues.join(", ")), el("td", {}, ...(jobs.length ? jobs : ["—"])),
    el("td", { class: "num" }, w.processed), el("td", { class: "num" }, w.failed),
    el("td", {}, ago(w.beat_at)));
}

function failedRow(f) {
  return el("tr", { "data-failed": f.id },
    el("td", {}, jobLink(f.id, true)), el("td", {}, f.queue ?? "—"), el("td", {}, ago(f.failed_at)),
    el("td", { class: "num" }, f.tries), el("td", {}, f.error),
    el("td", { class: "admin" },
      button("retry", "POST", `/v1/failed/${enc(f.id)}/retry`, `retry ${f.id}`),
      button("forget", "DELETE", `/v1/failed/${enc(f.id)}`, `forget ${f.id}`)));
}

function batchRow(b) {
  const actions = admin && b.state === "running"
    ? el("td", { class: "admin" }, button("cancel", "POST", `/v1/batches/${enc(b.id)}/cancel`, `cancel batch ${b.id}`))
    : (admin ? el("td", { class: "admin" }) : null);
  return el("tr", { "data-batch": b.id },
    el("td", {}, b.name || "", " ", el("span", { class: "id" }, b.id)),
    el("td", {}, b.cancelled ? "cancelled" : b.state),
    el("td", {}, el("progress", { max: 100, value: b.progress }), ` ${b.progress} %`),
    el("td", { class: "num" }, b.total), el("td", { class: "num" }, b.pending),
    el("td", { class: "num" }, b.failed), el("td", {}, ago(b.created_at)), actions);
}

function scheduleRow(s) {
  const n = enc(s.name);
  const actions = admin ? el("td", { class: "admin" },
    s.paused ? button("resume", "POST", `/v1/schedules/${n}/resume`, `resume schedule ${s.name}`)
             : button("pause", "POST", `/v1/schedules/${n}/pause`, `pause schedule ${s.name}`),
    button("trigger", "POST", `/v1/schedules/${n}/trigger`, `trigger ${s.name}`)) : null;
  return el("tr", { "data-schedule": s.name },
    el("td", {}, s.name), el("td", {}, s.queue), el("td", { class: "id" }, s.when),
    el("td", {}, s.paused ? "—" : ago(s.next_due)), el("td", { class: "id" }, s.last_job ?? "—"),
    el("td", { class: "num" }, s.ticks),
    el("td", s.paused ? { class: "paused" } : {}, s.paused ? "paused" : "active"), actions);
}

function render(snap) {
  admin = Boolean(snap.admin);
  document.body.classList.toggle("is-admin", admin);
  $("#who").textContent = `${snap.user}${admin ? " (admin)" : " (read-only)"}`;
  $("#view").hidden = false;
  $("#login").hidden = true;
  $("#logout").hidden = !token;
  fill("queues", snap.queues.map(queueRow));
  const busy = snap.workers.filter((w) => w.in_flight.length).length;
  $("#workers-summary").textContent = `${snap.workers.length} live, ${busy} busy`;
  fill("workers", snap.workers.map(workerRow));
  if (snap.failed === null) {
    $("#failed-note").textContent = "Failed jobs need an admin token.";
    fill("failed", []);
  } else {
    $("#failed-note").textContent = `${snap.failed.length} shown, newest first.`;
    fill("failed", snap.failed.map(failedRow));
  }
  fill("batches", snap.batches.map(batchRow));
  fill("schedules", snap.schedules.map(scheduleRow));
  const st = $("#status");
  st.textContent = "live · " + new Date(snap.at * 1000).toLocaleTimeString();
  st.className = "status live";
}

function down(text) {
  const st = $("#status");
  st.textContent = text;
  st.className = "status down";
}

function askToken(message) {
  $("#login").hidden = false;
  $("#view").hidden = true;
  $("#login-error").textContent = message || "";
  $("#token").focus();
}

async function stream() {
  controller = new AbortController();
  let r;
  try {
    r = await fetch("/ui/stream", { headers: headers(), signal: controller.signal });
  } catch (e) {
    down("offline: " + e.message);
    return 3000;
  }
  if (r.status === 401 || r.status === 403) {
    let detail = "";
    try { detail = (await r.json()).detail; } catch (e) { detail = r.statusText; }
    askToken(token ? `Token refused: ${detail}` : "");
    return null;
  }
  if (!r.ok) {
    down(`error ${r.status}; retrying`);
    return 3000;
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    let chunk;
    try { chunk = await reader.read(); } catch (e) { break; }
    if (chunk.done) break;
    buf += decoder.decode(chunk.value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      handle(buf.slice(0, cut));
      buf = buf.slice(cut + 2);
    }
  }
  down("reconnecting…");
  return 500;
}

function handle(block) {
  let event = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (event === "snapshot") render(JSON.parse(data));
  else if (event === "error") down("server: " + JSON.parse(data).detail);
}

async function run() {
  for (;;) {
    const wait = await stream();
    if (wait === null) return;  // waiting for a token
    await new Promise((ok) => setTimeout(ok, wait));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("#token").value.trim();
    sessionStorage.setItem(KEY, token);
    $("#token").value = "";
    run();
  });
  $("#lookup").addEventListener("submit", (ev) => {
    ev.preventDefault();
    showJob($("#job-id").value.trim(), false);
  });
  $("#logout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    token = "";
    if (controller) controller.abort();
    location.reload();
  });
  run();
});
