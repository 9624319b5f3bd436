// o365-migrate dashboard. Plain script, no framework, no CDN. Every text from the server is
// put in the page with textContent (never innerHTML), so nothing from a mailbox can run here.
"use strict";

const state = { csrf: null, overview: null, mailbox: null, ledgerAfter: [0], ledgerNext: null };

function $(id) { return document.getElementById(id); }
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function fmtInt(n) { return n === null || n === undefined ? "unknown" : Number(n).toLocaleString("en-US"); }
function fmtBytes(b) {
  const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; let v = b;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + " " + u[i];
}
function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  if (h > 48) return Math.round(h / 24) + " days";
  if (h > 0) return h + " h " + m + " min";
  if (m > 0) return m + " min";
  return s + " s";
}
function fmtDate(unix) {
  if (!unix) return "";
  return new Date(unix * 1000).toISOString().slice(0, 16).replace("T", " ");
}
function notice(text, isError) {
  const n = $("notice");
  n.textContent = text; n.hidden = !text; n.className = isError ? "notice error" : "notice";
}

async function api(path, options) {
  const o = options || {};
  const headers = { "Accept": "application/json" };
  if (o.method && o.method !== "GET") {
    headers["X-CSRF-Token"] = state.csrf;
    headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, { method: o.method || "GET", headers, body: o.body ? JSON.stringify(o.body) : undefined, credentials: "same-origin" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error || r.statusText) + (body.hint ? " — " + body.hint : ""));
  return body;
}

async function act(path, body) {
  try {
    await api(path, { method: "POST", body: body || {} });
    notice("");
    await refreshOverview();
  } catch (e) { notice(e.message, true); }
}

// ---- overview ----------------------------------------------------------------------------

function renderOverview(o) {
  state.overview = o;
  const run = $("run-state");
  let label = "idle";
  if (o.running && o.paused) label = "paused";
  else if (o.running) label = "running";
  else if (o.paused) label = "paused (no run)";
  run.textContent = label;
  run.className = "pill " + label.split(" ")[0];
  run.dataset.state = label.split(" ")[0];
  for (const k of ["waiting", "running", "paused", "done", "failed"]) $("count-" + k).textContent = fmtInt(o.states[k]);
  $("total-migrated").textContent = fmtInt(o.totals.migrated);
  $("total-skipped").textContent = fmtInt(o.totals.skipped);
  $("total-failed").textContent = fmtInt(o.totals.failed);
  $("total-pending").textContent = fmtInt(o.pending);
  $("total-bytes").textContent = fmtBytes(o.totals.migrated_bytes);
  $("rate").textContent = o.rate_per_minute.toFixed(1) + " msg/min";
  $("eta").textContent = o.pending === 0 ? "done" : fmtDuration(o.eta_seconds);
  $("verify").textContent = o.verify ? (o.verify.ok ? "ok" : "differences") + (o.verify.deep ? " (deep)" : "") : "not run";
  const canAct = o.can_start;
  $("start-run").disabled = !canAct || o.running;
  $("start-sync").disabled = !canAct || o.running;
  $("pause").disabled = o.read_only || !!o.paused;
  $("resume").disabled = o.read_only || !o.paused;
  $("mb-retry").disabled = !canAct || o.running;
  renderChart(o.throughput, o.generated_at);
  renderMailboxes();
  if (state.mailbox && !$("mailbox-page").hidden) loadMailbox(state.mailbox, false);
}

function renderChart(points, now) {
  const svg = $("chart");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const start = now - 3600000;
  const max = Math.max(1, ...points.map(p => p.items));
  const ns = "http://www.w3.org/2000/svg";
  for (const p of points) {
    const x = (p.at - start) / 3600000 * 600;
    const h = p.items / max * 110;
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", x.toFixed(1)); r.setAttribute("width", "9");
    r.setAttribute("y", (120 - h).toFixed(1)); r.setAttribute("height", h.toFixed(1));
    const t = document.createElementNS(ns, "title");
    t.textContent = new Date(p.at).toISOString().slice(11, 16) + " UTC: " + p.items + " messages";
    r.appendChild(t);
    svg.appendChild(r);
  }
  $("chart-max").textContent = points.length ? "peak " + fmtInt(max) + " messages in a minute" : "nothing migrated in the last hour";
}

function renderMailboxes() {
  const o = state.overview; if (!o) return;
  const f = $("mailbox-filter").value.trim().toLowerCase();
  const tb = $("mailboxes");
  tb.replaceChildren();
  for (const m of o.mailboxes) {
    if (f && !(m.source.toLowerCase().includes(f) || m.target.toLowerCase().includes(f) || m.state.includes(f))) continue;
    const tr = el("tr"); tr.dataset.id = m.id; tr.dataset.source = m.source;
    const a = el("a", m.source); a.href = "#/mailbox/" + m.id;
    const td = el("td"); td.appendChild(a); tr.appendChild(td);
    tr.appendChild(el("td", m.target));
    const st = el("td"); const pill = el("span", m.state, "pill " + m.state); st.appendChild(pill); tr.appendChild(st);
    const pr = el("td"); const bar = el("progress"); bar.max = 100; bar.value = m.percent; pr.appendChild(bar); pr.appendChild(el("span", " " + m.percent + "%")); tr.appendChild(pr);
    tr.appendChild(el("td", fmtInt(m.counts.migrated), "num migrated"));
    tr.appendChild(el("td", fmtInt(m.counts.skipped), "num skipped"));
    tr.appendChild(el("td", fmtInt(m.counts.failed), "num failed"));
    tr.appendChild(el("td", fmtInt(m.pending), "num pending"));
    tr.appendChild(el("td", fmtInt(m.throttled_answers), "num"));
    if (m.error) tr.title = m.error;
    tb.appendChild(tr);
  }
}

function addEvent(kind, text, at) {
  const li = el("li");
  li.appendChild(el("time", at ? new Date(at).toISOString().slice(0, 19).replace("T", " ") : ""));
  li.appendChild(el("span", kind, "kind"));
  li.appendChild(el("span", text));
  const list = $("events");
  list.insertBefore(li, list.firstChild);
  while (list.children.length > 50) list.removeChild(list.lastChild);
}

async function refreshOverview() {
  try { renderOverview(await api("/api/overview")); } catch (e) { notice(e.message, true); }
}

// ---- a mailbox -----------------------------------------------------------------------------

async function loadMailbox(id, resetLedger) {
  let d;
  try { d = await api("/api/mailboxes/" + id); } catch (e) { notice(e.message, true); return; }
  state.mailbox = id;
  const m = d.mailbox;
  $("mb-title").textContent = m.source + " → " + m.target;
  $("mb-state").textContent = m.state; $("mb-state").className = "pill " + m.state;
  $("mb-summary").textContent = fmtInt(m.counts.migrated) + " migrated, " + fmtInt(m.counts.skipped) + " skipped, " + fmtInt(m.counts.failed) + " failed, " + fmtInt(m.pending) + " pending";
  $("mb-error").hidden = !m.error; $("mb-error").textContent = m.error || "";
  $("mb-verify").textContent = d.verify ? (d.verify.ok ? "ok" : d.verify.missing + " missing, " + d.verify.extra + " extra, " + d.verify.differs + " differ" + (d.verify.error ? " — " + d.verify.error : "")) : "not run";
  $("mb-throttling").textContent = fmtInt(m.throttled_answers) + " throttled answers, " + fmtInt(m.throttle_pauses) + " pauses";
  const tb = $("mb-folders"); tb.replaceChildren();
  const sel = $("q-folder"); const chosen = sel.value; sel.replaceChildren(el("option", "any folder"));
  sel.firstChild.value = "";
  for (const f of d.folders) {
    const tr = el("tr");
    for (const [v, c] of [[f.source_path], [f.target_path], [fmtInt(f.counts.migrated), "num"], [fmtInt(f.counts.skipped), "num"], [fmtInt(f.counts.failed), "num"], [fmtInt(f.counts.planned), "num"]]) tr.appendChild(el("td", v, c));
    tb.appendChild(tr);
    const o = el("option", f.source_path); o.value = f.id; sel.appendChild(o);
  }
  sel.value = chosen;
  if (resetLedger) { state.ledgerAfter = [0]; await searchLedger(); }
}

async function searchLedger() {
  const p = new URLSearchParams();
  p.set("mailbox", state.mailbox);
  const add = (k, v) => { if (v) p.set(k, v); };
  add("q", $("q-text").value.trim());
  add("status", $("q-status").value);
  add("folder", $("q-folder").value);
  add("since", $("q-since").value);
  add("before", $("q-before").value);
  p.set("after", state.ledgerAfter[state.ledgerAfter.length - 1]);
  p.set("limit", "50");
  let page;
  try { page = await api("/api/items?" + p.toString()); } catch (e) { notice(e.message, true); return; }
  state.ledgerNext = page.next_after;
  const first = (state.ledgerAfter.length - 1) * 50 + 1;
  $("ledger-count").textContent = page.total === 0 ? "No item matches." : fmtInt(page.total) + " items match; showing " + fmtInt(first) + "–" + fmtInt(first + page.items.length - 1) + ".";
  $("ledger-next").disabled = !page.next_after;
  $("ledger-first").disabled = state.ledgerAfter.length === 1;
  const tb = $("ledger"); tb.replaceChildren();
  for (const it of page.items) {
    const tr = el("tr", undefined, it.status); tr.dataset.id = it.id;
    tr.appendChild(el("td", fmtDate(it.internal_date)));
    tr.appendChild(el("td", it.folder_path));
    tr.appendChild(el("td", it.sender || ""));
    tr.appendChild(el("td", it.subject || "", "subject"));
    tr.appendChild(el("td", it.size === null ? "" : fmtBytes(it.size), "num"));
    tr.appendChild(el("td", it.status, "fate"));
    tr.appendChild(el("td", it.reason || "", "reason"));
    tb.appendChild(tr);
  }
}

// ---- routing, live updates, buttons -------------------------------------------------------

function route() {
  const m = location.hash.match(/^#\/mailbox\/(\d+)$/);
  $("overview-page").hidden = !!m;
  $("mailbox-page").hidden = !m;
  if (m) loadMailbox(Number(m[1]), true); else state.mailbox = null;
}

function live() {
  const es = new EventSource("/api/events");
  es.addEventListener("open", () => { $("live").className = "live on"; });
  es.addEventListener("error", () => { $("live").className = "live off"; });
  es.addEventListener("overview", e => renderOverview(JSON.parse(e.data)));
  es.addEventListener("stored", e => { const x = JSON.parse(e.data); addEvent(x.kind, x.detail, x.at); });
  es.addEventListener("engine", e => {
    const x = JSON.parse(e.data);
    const who = x.mailbox ? x.mailbox + ": " : "";
    const what = x.reason || x.outcome || x.by || "";
    addEvent(x.event, who + what, Date.now());
  });
}

async function main() {
  try {
    const s = await api("/api/session");
    state.csrf = s.csrf_token;
  } catch (e) { notice(e.message, true); return; }
  $("start-run").addEventListener("click", () => act("/api/runs", { kind: "run" }));
  $("start-sync").addEventListener("click", () => act("/api/runs", { kind: "sync" }));
  $("pause").addEventListener("click", () => act("/api/pause"));
  $("resume").addEventListener("click", () => act("/api/resume"));
  $("mb-retry").addEventListener("click", () => act("/api/mailboxes/" + state.mailbox + "/retry"));
  $("mailbox-filter").addEventListener("input", renderMailboxes);
  $("ledger-form").addEventListener("submit", e => { e.preventDefault(); state.ledgerAfter = [0]; searchLedger(); });
  $("ledger-next").addEventListener("click", () => { if (state.ledgerNext) { state.ledgerAfter.push(state.ledgerNext); searchLedger(); } });
  $("ledger-first").addEventListener("click", () => { state.ledgerAfter = [0]; searchLedger(); });
  window.addEventListener("hashchange", route);
  await refreshOverview();
  route();
  live();
}

document.addEventListener("DOMContentLoaded", main);
