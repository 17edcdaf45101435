// moat leak console: talks only to this broker's /api/v1/ (same origin),
// renders with textContent (never HTML from data), no inline code.
"use strict";

const state = { csrf: null, seen: new Set(), view: "findings", client: null,
                timer: null, findings: [] };

const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const opts = { credentials: "same-origin", headers: {}, ...options };
  if (opts.body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.body);
  }
  if (opts.method === "POST" && state.csrf)
    opts.headers["X-CSRF-Token"] = state.csrf;
  const r = await fetch("/api/v1" + path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.status === 401 && path !== "/login") showLogin();
  return { status: r.status, data };
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

function time(ts) { return ts ? ts.replace("T", " ").replace("Z", "") : ""; }

function clientLink(td, id) {
  clear(td);
  const a = document.createElement("a");
  a.className = "client-link";
  a.textContent = id;
  a.dataset.client = id;
  a.addEventListener("click", () => openClient(id));
  td.appendChild(a);
}

function where(f) {
  return f.part + (f.path ? " " + f.path : "") + " " + f.start + "-" + f.end;
}

// ---- views ---------------------------------------------------------------

function show(view) {
  state.view = view;
  for (const v of ["login", "findings", "clients", "client", "security", "check"])
    $(v + "-view").hidden = v !== view;
  for (const b of document.querySelectorAll("nav .tab"))
    b.classList.toggle("active", b.dataset.view === view);
  refresh();
}

function showLogin() {
  state.csrf = null;
  $("nav").hidden = true;
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
  show("login");
}

function loggedIn(user, csrf) {
  state.csrf = csrf;
  $("who").textContent = user;
  $("nav").hidden = false;
  show("findings");
  if (!state.timer) state.timer = setInterval(refresh, 2000);
}

async function refresh() {
  if (!state.csrf) return;
  if (state.view === "findings") return refreshFindings();
  if (state.view === "clients") return refreshClients();
  if (state.view === "client") return refreshClient();
  if (state.view === "security") return refreshSecurity();
  if (state.view === "check") return refreshCheck();
}

// ---- findings ------------------------------------------------------------

async function refreshFindings() {
  const counts = await api("/leaks/counts");
  if (counts.status === 200) drawChart(counts.data.categories);
  const tl = await api("/leaks/timeline");
  if (tl.status === 200) drawTimeline(tl.data.intervals);
  const r = await api("/leaks?limit=256");
  if (r.status !== 200) return;
  state.findings = r.data.findings;
  const body = $("feed").querySelector("tbody");
  // Oldest first, so that the newest ends on top.
  for (const f of [...r.data.findings].reverse()) {
    const key = f.ts + " " + f.hmac + " " + f.category + " " + f.client_id;
    if (state.seen.has(key)) continue;
    state.seen.add(key);
    const row = document.createElement("tr");
    row.className = "new finding";
    row.dataset.category = f.category;
    cell(row, time(f.ts));
    cell(row, f.category, "category");
    cell(row, f.severity);
    clientLink(cell(row, ""), f.client_id);
    cell(row, f.user === null ? "(anonymous)" : f.user);
    cell(row, f.topic, "topic");
    cell(row, where(f));
    cell(row, f.preview, "preview");
    cell(row, f.action);
    cell(row, f.message);
    body.insertBefore(row, body.firstChild);
    setTimeout(() => row.classList.remove("new"), 4000);
  }
  drawTop("top-topics", r.data.findings, (f) => f.topic);
  drawTop("top-clients", r.data.findings, (f) => f.client_id);
}

function drawChart(categories) {
  const chart = $("chart");
  clear(chart);
  const rows = Object.entries(categories)
    .map(([name, a]) => [name, a.log + a.alert + a.redact + a.block])
    .filter(([, n]) => n > 0)
    .sort((x, y) => y[1] - x[1]);
  if (!rows.length) {
    chart.textContent = "No findings yet.";
    return;
  }
  const max = rows[0][1];
  for (const [name, n] of rows) {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.category = name;
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = name;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.max(1, Math.round(400 * n / max)) + "px";
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = String(n);
    row.append(label, bar, value);
    chart.appendChild(row);
  }
}

function drawTimeline(intervals) {
  const box = $("timeline");
  clear(box);
  const max = Math.max(1, ...intervals.map((i) => i.total));
  for (const i of intervals) {
    const bar = document.createElement("span");
    bar.className = i.total ? "tl-bar" : "tl-bar empty";
    bar.dataset.total = String(i.total);
    bar.style.height = Math.max(1, Math.round(110 * i.total / max)) + "px";
    const parts = Object.entries(i.counts).map(([c, n]) => c + " " + n);
    bar.title = time(i.start) + " to " + time(i.end) + ": " +
      (parts.length ? parts.join(", ") : "none");
    box.appendChild(bar);
  }
}

function drawTop(id, findings, keyOf) {
  const counts = new Map();
  for (const f of findings) counts.set(keyOf(f), (counts.get(keyOf(f)) || 0) + 1);
  const list = $(id);
  clear(list);
  for (const [k, n] of [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10)) {
    const li = document.createElement("li");
    li.textContent = k + " (" + n + ")";
    list.appendChild(li);
  }
}

// ---- clients -------------------------------------------------------------

async function refreshClients() {
  const r = await api("/clients?limit=1000");
  if (r.status !== 200) return;
  const body = $("clients").querySelector("tbody");
  clear(body);
  for (const c of r.data.clients) {
    const row = document.createElement("tr");
    clientLink(cell(row, ""), c.client_id);
    cell(row, c.user === null ? "(anonymous)" : c.user);
    cell(row, c.address);
    cell(row, c.protocol);
    cell(row, c.version);
    cell(row, time(c.connected_since));
    cell(row, c.subscriptions);
    cell(row, c.queued);
    body.appendChild(row);
  }
}

function openClient(id) {
  state.client = id;
  $("client-id").textContent = id;
  $("client-status").textContent = "";
  show("client");
}

async function refreshClient() {
  const id = state.client;
  const r = await api("/clients?limit=1000");
  const info = $("client-info");
  clear(info);
  const c = r.status === 200 ? r.data.clients.find((x) => x.client_id === id) : null;
  const fields = c ? [["User", c.user === null ? "(anonymous)" : c.user],
                      ["Address", c.address], ["Protocol", c.protocol + " " + c.version],
                      ["Connected since", time(c.connected_since)],
                      ["Subscriptions", c.subscriptions], ["Queued", c.queued],
                      ["In flight", c.inflight]]
                   : [["Connection", "not connected"]];
  for (const [k, v] of fields) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = String(v);
    info.append(dt, dd);
  }
  $("disconnect").disabled = !c;
  const f = await api("/leaks?limit=256&client_id=" + encodeURIComponent(id));
  if (f.status !== 200) return;
  const body = $("client-findings").querySelector("tbody");
  clear(body);
  for (const x of f.data.findings) {
    const row = document.createElement("tr");
    cell(row, time(x.ts));
    cell(row, x.category);
    cell(row, x.topic);
    cell(row, where(x));
    cell(row, x.preview, "preview");
    cell(row, x.action);
    body.appendChild(row);
  }
}

async function disconnect() {
  const r = await api("/clients/disconnect", { method: "POST", body: { client_id: state.client } });
  $("client-status").textContent = r.status === 200 ? "Disconnected."
    : (r.data && r.data.error) || ("Failed (" + r.status + ")");
  refreshClient();
}

// ---- security events -----------------------------------------------------

async function refreshSecurity() {
  const r = await api("/security-events?limit=256");
  if (r.status !== 200) return;
  const body = $("security").querySelector("tbody");
  clear(body);
  for (const e of r.data.events) {
    const row = document.createElement("tr");
    cell(row, time(e.ts));
    cell(row, e.event);
    cell(row, e.user === null || e.user === undefined ? "" : e.user);
    cell(row, e.client_id || "");
    cell(row, e.peer || "");
    cell(row, e.detail || e.action || "");
    body.appendChild(row);
  }
}

// ---- configuration check -------------------------------------------------

async function refreshCheck() {
  const r = await api("/check");
  const body = $("check").querySelector("tbody");
  if (r.status !== 200) {
    $("check-summary").textContent = (r.data && r.data.error) || ("Not available (" + r.status + ")");
    clear(body);
    return;
  }
  $("check-file").textContent = r.data.file;
  $("check-summary").textContent = Object.entries(r.data.summary)
    .map(([sev, n]) => sev + ": " + n).join(", ");
  clear(body);
  for (const f of r.data.findings) {
    const row = document.createElement("tr");
    row.className = "check-finding";
    cell(row, f.id);
    cell(row, f.severity);
    cell(row, f.title);
    cell(row, f.evidence);
    cell(row, f.remediation);
    body.appendChild(row);
  }
}

// ---- start ---------------------------------------------------------------

async function login(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  const r = await api("/login", { method: "POST", body: {
    user: $("login-user").value, password: $("login-password").value } });
  $("login-password").value = "";
  if (r.status === 200) loggedIn(r.data.user, r.data.csrf_token);
  else $("login-error").textContent = (r.data && r.data.error) || ("Login failed (" + r.status + ")");
}

async function logout() {
  await api("/logout", { method: "POST", body: {} });
  showLogin();
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("disconnect").addEventListener("click", disconnect);
  for (const b of document.querySelectorAll("nav .tab"))
    b.addEventListener("click", () => show(b.dataset.view));
  const who = await api("/whoami");
  if (who.status === 200 && who.data.csrf_token) loggedIn(who.data.user, who.data.csrf_token);
  else showLogin();
});
