/**
 * The live view page: plain HTML, CSS and JS served by the admin listener, no build step. The
 * script builds every cell with textContent (never innerHTML), and the Content-Security-Policy
 * allows only these same-origin files: an attacker's target is shown as text, never run.
 */

export const LIVE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>portcullis live view</title>
<link rel="stylesheet" href="/live.css">
<script src="/live.js" defer></script>
</head>
<body>
<header>
  <h1>portcullis <span class="sub">live view</span></h1>
  <div class="meta">
    <span id="status" class="status off">connecting</span>
    <span>policy <code id="policy-version">?</code> from <code id="policy-origin">?</code></span>
    <span><b id="count-total">0</b> requests, <b id="count-denied">0</b> denied, <b id="count-audit">0</b> audited</span>
  </div>
</header>
<main>
  <section>
    <h2>Clients</h2>
    <table id="clients">
      <thead><tr><th>client</th><th>profile</th><th>mode</th><th class="n">requests</th><th class="n">allowed</th><th class="n">denied</th><th class="n">audited</th><th>last operation</th><th>last seen</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Denials <span class="sub">and what would allow them</span></h2>
    <table id="denials">
      <thead><tr><th>time</th><th>client</th><th>request</th><th>operation</th><th>decided by</th><th>to allow it</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Recent decisions</h2>
    <table id="recent">
      <thead><tr><th>time</th><th>decision</th><th>client</th><th>request</th><th>operation</th><th class="n">status</th><th class="n">ms</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<footer>Updates arrive as they happen (Server-Sent Events). Streams and tunnels appear when they end.</footer>
</body>
</html>
`;

export const LIVE_CSS = `
:root { --bg:#f6f7f9; --fg:#1d232b; --muted:#667085; --line:#e2e5ea; --allow:#0f7b3f; --deny:#b42318; --audit:#9a6700; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--fg); }
header { background:#1d232b; color:#fff; padding:14px 24px; display:flex; flex-wrap:wrap; align-items:baseline; gap:8px 32px; }
h1 { margin:0; font-size:20px; font-weight:650; }
h1 .sub { font-weight:400; color:#aab2bf; }
.meta { display:flex; flex-wrap:wrap; gap:6px 24px; color:#d0d5dd; }
.meta code { color:#fff; }
.status { padding:1px 10px; border-radius:10px; font-weight:600; font-size:12px; }
.status.on { background:#12b76a; color:#fff; }
.status.off { background:#f79009; color:#fff; }
main { padding:8px 24px 24px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; margin-top:16px; padding:4px 16px 12px; overflow-x:auto; }
h2 { font-size:15px; margin:10px 0 6px; }
h2 .sub { font-weight:400; color:var(--muted); }
table { width:100%; border-collapse:collapse; }
th { text-align:left; font-weight:600; color:var(--muted); font-size:12px; border-bottom:1px solid var(--line); padding:6px 8px; white-space:nowrap; }
td { padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
td.n, th.n { text-align:right; font-variant-numeric:tabular-nums; }
td.target { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; word-break:break-all; max-width:520px; }
td.time { white-space:nowrap; color:var(--muted); font-variant-numeric:tabular-nums; }
td.op { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; }
td.hint { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; color:#175cd3; }
.badge { display:inline-block; padding:0 8px; border-radius:9px; font-size:12px; font-weight:600; color:#fff; }
.badge.allow { background:var(--allow); }
.badge.deny { background:var(--deny); }
.badge.audit { background:var(--audit); }
.mode-learn, .mode-audit { color:var(--audit); font-weight:600; }
tr.fresh td { animation: flash 1.5s ease-out; }
@keyframes flash { from { background:#fff6d5; } to { background:transparent; } }
.empty td { color:var(--muted); font-style:italic; }
footer { color:var(--muted); font-size:12px; padding:0 24px 24px; }
`;

export const LIVE_JS = `"use strict";
(function () {
  var MAX_RECENT = 100, MAX_DENIALS = 50;
  var clients = {};
  var totals = { total: 0, denied: 0, audit: 0 };

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function time(ms) {
    var d = new Date(ms);
    function p(n) { return (n < 10 ? "0" : "") + n; }
    return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }
  function badge(decision) {
    var cls = decision === "allow" || decision === "deny" || decision === "audit" ? decision : "deny";
    return el("span", decision, "badge " + cls);
  }
  function body(id) { return document.querySelector("#" + id + " tbody"); }
  function clearEmpty(tb) { var e = tb.querySelector("tr.empty"); if (e) tb.removeChild(e); }
  function empty(id, cols, text) {
    var tb = body(id);
    if (tb.children.length) return;
    var tr = el("tr", null, "empty"), td = el("td", text);
    td.colSpan = cols; tr.appendChild(td); tb.appendChild(tr);
  }
  function request(d) { return d.method + " " + d.target; }

  function recentRow(d) {
    var tr = el("tr");
    tr.appendChild(el("td", time(d.time), "time"));
    var td = el("td"); td.appendChild(badge(d.decision)); tr.appendChild(td);
    tr.appendChild(el("td", d.client));
    tr.appendChild(el("td", request(d), "target"));
    tr.appendChild(el("td", d.operation || "-", "op"));
    tr.appendChild(el("td", d.status, "n"));
    tr.appendChild(el("td", d.durationMs, "n"));
    return tr;
  }
  function denialRow(d) {
    var tr = el("tr");
    tr.appendChild(el("td", time(d.time), "time"));
    tr.appendChild(el("td", d.profile === d.client ? d.client : d.client + " (" + d.profile + ")"));
    var req = el("td", request(d), "target");
    if (d.decision === "audit") { req.appendChild(document.createTextNode(" ")); req.appendChild(badge("audit")); }
    tr.appendChild(req);
    tr.appendChild(el("td", d.operation || "-", "op"));
    tr.appendChild(el("td", d.rule || d.reason || "-"));
    tr.appendChild(el("td", d.suggestion || d.message || "-", "hint"));
    return tr;
  }
  function prepend(id, tr, max) {
    var tb = body(id);
    clearEmpty(tb);
    tr.className = (tr.className ? tr.className + " " : "") + "fresh";
    tb.insertBefore(tr, tb.firstChild);
    while (tb.children.length > max) tb.removeChild(tb.lastChild);
  }
  function renderClients() {
    var tb = body("clients");
    while (tb.firstChild) tb.removeChild(tb.firstChild);
    var names = Object.keys(clients).sort();
    names.forEach(function (n) {
      var c = clients[n], tr = el("tr");
      tr.appendChild(el("td", c.client));
      tr.appendChild(el("td", c.profile));
      tr.appendChild(el("td", c.mode, "mode-" + (c.mode === "learn" || c.mode === "audit" ? c.mode : "enforce")));
      tr.appendChild(el("td", c.requests, "n"));
      tr.appendChild(el("td", c.allowed, "n"));
      tr.appendChild(el("td", c.denied, "n"));
      tr.appendChild(el("td", c.audited, "n"));
      tr.appendChild(el("td", c.lastOperation || "-", "op"));
      tr.appendChild(el("td", c.lastSeen ? time(c.lastSeen) : "-", "time"));
      tb.appendChild(tr);
    });
    empty("clients", 9, "no client seen yet");
  }
  function renderTotals() {
    document.getElementById("count-total").textContent = String(totals.total);
    document.getElementById("count-denied").textContent = String(totals.denied);
    document.getElementById("count-audit").textContent = String(totals.audit);
  }
  function count(d) {
    totals.total++;
    if (d.decision === "deny") totals.denied++;
    if (d.decision === "audit") totals.audit++;
  }
  function status(on) {
    var s = document.getElementById("status");
    s.textContent = on ? "live" : "reconnecting";
    s.className = "status " + (on ? "on" : "off");
  }

  function snapshot(s) {
    clients = {};
    totals = { total: 0, denied: 0, audit: 0 };
    s.clients.forEach(function (c) { clients[c.client] = c; totals.total += c.requests; totals.denied += c.denied; totals.audit += c.audited; });
    document.getElementById("policy-version").textContent = s.policy.version;
    document.getElementById("policy-origin").textContent = s.policy.origin;
    ["recent", "denials"].forEach(function (id) { var tb = body(id); while (tb.firstChild) tb.removeChild(tb.firstChild); });
    s.recent.slice(-MAX_RECENT).forEach(function (d) { body("recent").insertBefore(recentRow(d), body("recent").firstChild); });
    s.denials.slice(-MAX_DENIALS).forEach(function (d) { body("denials").insertBefore(denialRow(d), body("denials").firstChild); });
    empty("recent", 7, "no request yet");
    empty("denials", 6, "no denial yet");
    renderClients();
    renderTotals();
  }
  function decision(m) {
    var d = m.decision;
    clients[m.client.client] = m.client;
    count(d);
    prepend("recent", recentRow(d), MAX_RECENT);
    if (d.decision !== "allow") prepend("denials", denialRow(d), MAX_DENIALS);
    renderClients();
    renderTotals();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var es = new EventSource("/live/events");
    es.addEventListener("open", function () { status(true); });
    es.addEventListener("error", function () { status(false); });
    es.addEventListener("snapshot", function (e) { status(true); snapshot(JSON.parse(e.data)); });
    es.addEventListener("decision", function (e) { decision(JSON.parse(e.data)); });
  });
})();
`;

export const LIVE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
