// corral's dashboard: one table fed by /api/events (server-sent events), a
// tree from /api/tree, a log view fed by /api/logs/stream. No framework, no
// build step. Actions are POSTs carrying the page's CSRF token.
"use strict";

const csrf = document.querySelector('meta[name="corral-csrf"]').content;
const rows = new Map();        // instance -> status row
const $ = (sel) => document.querySelector(sel);

function duration(s) {
  if (s === null || s === undefined) return "-";
  if (s < 60) return s.toFixed(1) + "s";
  const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d) return `${d}d ${h % 24}h`;
  if (h) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "K", "M", "G", "T"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + units[i];
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function stateBadge(state) {
  return el("span", { class: `state s-${state}`, text: state || "-" });
}

function buttons(name) {
  const cell = el("td", { class: "actions" });
  for (const verb of ["start", "stop", "restart"]) {
    cell.append(el("button", { "data-verb": verb, "data-name": name, text: verb,
                               "aria-label": `${verb} ${name}` }));
  }
  return cell;
}

function cells(row) {
  return {
    state: stateBadge(row.state), pid: row.pid ?? "-", uptime: duration(row.uptime),
    restarts: String(row.restarts ?? 0), cpu: row.cpu_percent == null ? "-" : row.cpu_percent.toFixed(1) + "%",
    rss: bytes(row.rss), reason: row.description || "",
  };
}

const COLUMNS = ["state", "pid", "uptime", "restarts", "cpu", "rss", "reason"];

function renderTable() {
  const body = $("#services tbody");
  body.replaceChildren();
  const byService = new Map();
  for (const row of rows.values()) {
    if (!byService.has(row.service)) byService.set(row.service, []);
    byService.get(row.service).push(row);
  }
  for (const [service, instances] of byService) {
    if (instances.length > 1 || instances[0].name !== service) {
      const head = el("tr", { class: "service", "data-service": service });
      head.append(el("td", { text: service }), el("td", { colspan: "7", text: `${instances.length} instances` }),
                  buttons(service));
      body.append(head);
    }
    for (const row of instances) {
      const tr = el("tr", { class: "instance", "data-name": row.name, "data-service": service });
      tr.append(el("td", { class: "name", text: row.name }));
      for (const col of COLUMNS) {
        const numeric = ["pid", "uptime", "restarts", "cpu", "rss"].includes(col);
        tr.append(el("td", { class: col + (numeric ? " num" : ""), "data-label": col }));
      }
      tr.append(buttons(row.name));
      body.append(tr);
      updateRow(row.name);
    }
  }
  applyFilter();
  fillLogNames();
}

function updateRow(name) {
  const row = rows.get(name);
  const tr = document.querySelector(`tr.instance[data-name="${CSS.escape(name)}"]`);
  if (!row || !tr) return;
  const values = cells(row);
  for (const col of COLUMNS) {
    const td = tr.querySelector("td." + col);
    td.replaceChildren(values[col]);
  }
  tr.dataset.state = row.state;
}

function applyFilter() {
  const text = $("#filter").value.trim().toLowerCase();
  for (const tr of document.querySelectorAll("#services tbody tr")) {
    const key = (tr.dataset.name || tr.dataset.service || "") + " " + (tr.dataset.state || "");
    tr.hidden = text !== "" && !key.toLowerCase().includes(text);
  }
}

function say(text, error = false) {
  const box = $("#message");
  box.textContent = text;
  box.className = error ? "error" : "";
}

// -- the event stream -----------------------------------------------------------

let treeTimer = null;

function connectEvents() {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { $("#conn").textContent = "live"; $("#conn").className = "conn"; });
  source.addEventListener("error", () => {
    $("#conn").textContent = "disconnected, retrying…"; $("#conn").className = "conn down";
  });
  source.addEventListener("hello", (e) => {
    const data = JSON.parse(e.data);
    rows.clear();
    for (const row of data.rows) rows.set(row.name, row);
    renderTable();
    loadTree();
  });
  source.addEventListener("move", (e) => {
    const { event, row } = JSON.parse(e.data);
    if (!row) { rows.delete(event.name); renderTable(); return; }
    const before = rows.get(row.name);
    if (before && before.pid === row.pid) {  // same process: keep its last usage
      row.cpu_percent = before.cpu_percent; row.rss = before.rss;
    }
    const known = rows.has(row.name);
    rows.set(row.name, row);
    if (known) updateRow(row.name); else renderTable();
    clearTimeout(treeTimer);
    treeTimer = setTimeout(loadTree, 1000);
  });
  source.addEventListener("usage", (e) => {
    const data = JSON.parse(e.data);
    for (const [name, [cpu, rss, uptime, restarts]] of Object.entries(data)) {
      const row = rows.get(name);
      if (!row) continue;
      Object.assign(row, { cpu_percent: cpu, rss, uptime, restarts });
      updateRow(name);
    }
  });
  source.addEventListener("dropped", (e) => {
    say(`${JSON.parse(e.data).count} events dropped (this page fell behind); reloading the table`);
    fetch("/api/status").then((r) => r.json()).then((list) => {
      rows.clear();
      for (const row of list) rows.set(row.name, row);
      renderTable();
    });
  });
}

// -- actions -------------------------------------------------------------------

async function act(verb, name) {
  if (name === "all" && !confirm(`${verb} every service?`)) return;
  say(`${verb} ${name}…`);
  try {
    const reply = await fetch(`/api/${verb}`, {
      method: "POST", headers: { "Content-Type": "application/json", "X-Corral-CSRF": csrf },
      body: JSON.stringify({ names: [name] }),
    });
    const data = await reply.json();
    if (!reply.ok) { say(`${verb} ${name}: ${data.error}`, true); return; }
    const failed = data.filter((o) => !o.ok);
    say(failed.length ? failed.map((o) => `${o.name}: ${o.state} ${o.message || ""}`).join("; ")
                      : `${verb} ${name}: done`, failed.length > 0);
  } catch (err) {
    say(`${verb} ${name}: ${err}`, true);
  }
}

document.addEventListener("click", (e) => {
  const button = e.target.closest("button[data-verb]");
  if (button) act(button.dataset.verb, button.dataset.name);
});
$("#filter").addEventListener("input", applyFilter);

// -- the tree --------------------------------------------------------------------

function treeNode(node, isTop) {
  const li = el("li", isTop ? { id: `svc-${node.name}` } : {});
  li.append(el("strong", { text: node.name }), " ");
  if (node.state) li.append(stateBadge(node.state), " ");
  li.append(el("span", { class: "after", text: node.class || node.kind || "" }));
  if (node.after && node.after.length) {
    const after = el("span", { class: "after" }, " after ");
    node.after.forEach((name, i) => {
      if (i) after.append(", ");
      after.append(el("a", { href: `#svc-${name}`, text: name }));
    });
    li.append(after);
  }
  const children = node.children || [];
  if ((node.instances || []).length > 1) {
    const ul = el("ul");
    for (const inst of node.instances) {
      ul.append(el("li", {}, inst.name + " ", stateBadge(inst.state), ` pid ${inst.pid ?? "-"}`));
    }
    li.append(ul);
  }
  if (children.length) {
    const ul = el("ul");
    for (const child of children) ul.append(treeNode(child, false));
    li.append(ul);
  }
  return li;
}

async function loadTree() {
  const reply = await fetch("/api/tree");
  if (!reply.ok) return;
  const tree = await reply.json();
  $("#app").textContent = tree.name || "";
  $("#tree").replaceChildren(...tree.children.map((n) => treeNode(n, true)));
}

// -- logs ---------------------------------------------------------------------

const MAX_LOG_LINES = 2000;
let logSource = null;

function fillLogNames() {
  const select = $("#log-name");
  const chosen = select.value;
  const names = new Set();
  for (const row of rows.values()) { names.add(row.service); names.add(row.name); }
  select.replaceChildren(el("option", { value: "", text: "all (merged)" }),
                         ...[...names].map((n) => el("option", { value: n, text: n })));
  select.value = names.has(chosen) ? chosen : "";
}

function logLine(item, cls) {
  const time = new Date(item.time * 1000).toLocaleTimeString();
  return el("div", { class: cls || (item.stream === "err" ? "err" : "") },
            `${time} ${item.name} ${item.stream}: ${item.line}`);
}

function appendLog(nodes) {
  const box = $("#log");
  box.append(...nodes);
  while (box.childElementCount > MAX_LOG_LINES) box.firstElementChild.remove();
  if ($("#log-follow").checked) box.scrollTop = box.scrollHeight;
}

function followLogs() {
  if (logSource) logSource.close();
  const name = $("#log-name").value;
  $("#log").replaceChildren();
  logSource = new EventSource("/api/logs/stream?lines=200" + (name ? "&name=" + encodeURIComponent(name) : ""));
  logSource.addEventListener("history", (e) => {
    $("#log").replaceChildren();
    appendLog(JSON.parse(e.data).map((item) => logLine(item)));
  });
  logSource.addEventListener("line", (e) => appendLog([logLine(JSON.parse(e.data))]));
  logSource.addEventListener("dropped", (e) => appendLog([el("div", { class: "notice",
    text: `[corral: ${JSON.parse(e.data).count} lines dropped: this page fell behind]` })]));
}

$("#log-name").addEventListener("change", followLogs);

connectEvents();
followLogs();
