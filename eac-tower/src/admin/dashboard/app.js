// The eac dashboard: reads the admin's JSON routes and its event stream with the token
// typed into the page (kept in this tab's sessionStorage only). No framework, no build.
"use strict";

(() => {
  const base = document.querySelector('meta[name="eac-base"]').content;
  const TOKEN_KEY = "eac-admin-token";
  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let current = null; // the running version
  let currentHash = null; // and its content hash
  let versions = []; // kept versions, newest first
  let stream = null; // the AbortController of the one event stream
  let retry = 1000;
  let reloadTimer = null;
  // A source fetched in the background changes with no event (an instance of the fleet
  // leaves, its lease runs out): while the page is shown, its state is read again.
  const POLL_MS = 2000;
  let pollTimer = null;

  // ---- small DOM helpers (text only: nothing from the server becomes markup) ----
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  }
  const pad = (n) => String(n).padStart(2, "0");
  function time(t) {
    if (typeof t !== "number") return "–";
    const d = new Date(t * 1000);
    const ago = Math.max(0, Math.round(Date.now() / 1000 - t));
    const rel = ago < 60 ? `${ago} s ago` : ago < 3600 ? `${Math.round(ago / 60)} min ago` : ago < 86400 ? `${Math.round(ago / 3600)} h ago` : `${Math.round(ago / 86400)} d ago`;
    const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const today = d.toDateString() === new Date().toDateString();
    const day = today ? "" : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `;
    return `${day}${clock} · ${rel}`;
  }
  function origin(o) {
    if (!o) return "–";
    const kind = String(o.kind || "?").replace(/_/g, " ");
    const rest = Object.entries(o)
      .filter(([k]) => k !== "kind")
      .map(([k, v]) => (k === "path" || k === "name" ? String(v) : `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`));
    return rest.length ? `${kind}: ${rest.join(", ")}` : kind;
  }
  function pill(text, kind) {
    return el("span", { class: `pill ${kind || text}` }, text);
  }
  function value(v) {
    if (v === undefined) return el("span", { class: "muted" }, "—");
    return el("code", {}, JSON.stringify(v));
  }
  function errorList(errors) {
    return (errors || []).map((e) =>
      el("li", {},
        el("strong", {}, e.key || e.pointer || e.kind || "error"),
        e.source ? el("span", { class: "muted" }, ` in ${e.source}`) : null,
        el("div", {}, e.message || JSON.stringify(e))));
  }

  // ---- requests ----
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (token) h["x-eac-refresh-token"] = token;
    return h;
  }
  class HttpError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }
  async function call(method, path, body) {
    const init = { method, headers: headers(body ? { "content-type": "application/json" } : {}), cache: "no-store" };
    if (body !== undefined) init.body = body;
    const response = await fetch(base + path, init);
    let json = null;
    try { json = await response.json(); } catch (_) { json = null; }
    if (!response.ok) throw new HttpError(response.status, json);
    return json;
  }

  function banner(text, kind) {
    const b = $("banner");
    b.className = `banner ${kind}`;
    b.textContent = text;
  }
  function needToken(message) {
    banner(message || "This admin needs a token to read: type the read-only or the admin token above.", "warn");
    $("token").focus();
  }

  // ---- rendering ----
  function renderStatus(s, h) {
    current = s.version;
    currentHash = s.hash;
    $("version").textContent = String(s.version);
    $("hash").textContent = s.hash;
    const entry = (h.versions || []).find((v) => v.version === s.version);
    $("origin").textContent = entry ? origin(entry.origin) : "–";
    $("published").textContent = time(s.published_at);
    const outcome = s.outcome || "none";
    fill($("outcome"), outcome);
    $("outcome").className = `pill ${outcome}`;
    $("outcome-time").textContent = s.time ? `${time(s.time)} · ${origin(s.origin)}` : "";
    fill($("errors"), errorList(s.errors));

    if (s.pending) {
      const p = s.pending;
      fill($("pending"),
        el("div", {}, pill("pending", "pending"), " a valid change waits for ", el("strong", {}, "Refresh now"),
          p.origin ? el("span", { class: "muted" }, ` (found by ${origin(p.origin)})`) : null),
        diffTable((p.diff && p.diff.changes) || p.changes || []));
      $("pending").className = "";
    } else {
      fill($("pending"), "No pending change.");
      $("pending").className = "muted";
    }
    const restart = s.restart_needed || [];
    const held = s.held_back || [];
    fill($("drift"), held.length
      ? el("div", { class: "note warn", id: "held-back" },
        "Held back (rejected; the rest of the change was published, these keep their last good content):",
        el("ul", {}, held.map((h) => el("li", {}, el("strong", {}, h.input), el("ul", { class: "errors" }, errorList(h.errors))))))
      : null,
      s.differs_from_sources
      ? el("p", { class: "note warn" }, "The running version differs from what the sources hold now (a rollback, or a change not yet published).")
      : null,
      restart.length
        ? el("p", { class: "note warn", id: "restart-needed" }, `A restart is needed to apply: ${restart.join(", ")}`)
        : null);
    const st = s.history_store;
    if (st) {
      const bad = st.failures > 0 || st.error;
      fill($("store"),
        el("div", {}, pill(bad ? "failing" : "ok", bad ? "rejected" : "published"), " ", el("code", {}, st.path || "")),
        st.error ? el("div", { class: "note warn" }, typeof st.error === "string" ? st.error : JSON.stringify(st.error)) : null,
        st.failures ? el("div", {}, `${st.failures} failed write(s)`) : null,
        st.unsaved && st.unsaved.length ? el("div", {}, `unsaved versions: ${st.unsaved.join(", ")}`) : null);
      $("store").className = "";
    } else {
      fill($("store"), "In memory only (no durable history).");
      $("store").className = "muted";
    }

    renderSources(s.sources || []);
    renderResolvers(s.resolvers || []);
    renderCanary(s.canary);

    const age = s.time ? ` ${time(s.time).replace(/^.*· /, "")}` : "";
    if (s.canary) {
      banner(`Serving version ${s.version}. Canary v${s.canary.version} serves ${Math.round(s.canary.share * 1000) / 10}% of requests, judged for ${Math.ceil(s.canary.window_left_ms / 1000)} s more.`, "warn");
    } else if (s.outcome === "rejected") {
      banner(`Serving version ${s.version}. The last reload was REJECTED${age}: the service keeps the last good version.`, "bad");
    } else if (s.pending) {
      banner(`Serving version ${s.version}. A change is pending: publish it with Refresh now.`, "warn");
    } else if ((s.sources || []).some((src) => !src.up || src.serving_cache)) {
      // Not green while a source cannot be reached: what is served may be behind it.
      const names = (s.sources || []).filter((src) => !src.up || src.serving_cache)
        .map((src) => `${src.name} is ${!src.up ? "down" : "served from its cache"}`);
      banner(`Serving version ${s.version}, but ${names.join(" and ")}: changes there are not seen until it is back.`, "warn");
    } else {
      banner(`Serving version ${s.version}. Last reload: ${s.outcome || "none"}${age}.`, "good");
    }
  }

  // The running canary: its version, share and window, and what each version's requests
  // met (requests, 5xx, p99), stable beside canary.
  function renderCanary(c) {
    const node = $("canary");
    $("canary-promote").disabled = !c;
    $("canary-abort").disabled = !c;
    if (!c) {
      fill(node, "No canary running.");
      node.className = "muted";
      return;
    }
    const ratio = (f) => f.requests ? `${(100 * f.errors / f.requests).toFixed(1)}%` : "–";
    const p99 = (f) => f.p99 == null ? "–" : `${f.p99.toFixed(1)} ms`;
    const row = (name, f) => el("tr", {}, el("td", {}, name), el("td", {}, String(f.requests)), el("td", {}, ratio(f)), el("td", {}, p99(f)));
    fill(node,
      el("p", {}, pill(`canary v${c.version}`, "pending"), ` serves ${Math.round(c.share * 1000) / 10}% of requests · `,
        el("span", { id: "canary-left" }, `${Math.ceil(c.window_left_ms / 1000)} s left in its window`),
        c.origin ? el("span", { class: "muted" }, ` · ${origin(c.origin)}`) : null),
      el("table", { class: "canary" },
        el("thead", {}, el("tr", {}, el("th", {}, "role"), el("th", {}, "requests"), el("th", {}, "5xx"), el("th", {}, "p99"))),
        el("tbody", {}, row("stable", c.stable), row("canary", c.canary))),
      el("p", { class: "muted small" }, `aborted when its 5xx share is over ${100 * c.thresholds.max_error_ratio}% or ${c.thresholds.max_error_ratio_vs_stable}× the stable one's, or its p99 over ${c.thresholds.max_latency_ratio}× (and ${c.thresholds.latency_floor} ms above); judged from ${c.thresholds.min_requests} requests`));
    node.className = "";
  }

  async function canaryAction(path, body) {
    try {
      const r = await call("POST", path, body);
      const what = r.outcome === "canary" && r.canary ? `canary v${r.canary.version} started` : `${r.outcome}, version ${r.version}`;
      showResult(el("p", { class: "note good" }, `Canary: ${what}.`));
    } catch (e) {
      showResult(failure(e));
    }
    load();
  }

  // A source that fetches in the background (a remote document, etcd): reachable or
  // not, its last fetch, serving from its cache; what only its kind knows (an ETag, a
  // revision, the fleet of instances) from `details`, tables for lists of records.
  function renderSources(sources) {
    if (!sources.length) {
      fill($("sources"), "Every source is read on demand (files, environment).");
      $("sources").className = "muted";
      return;
    }
    fill($("sources"), sources.map((src) =>
      el("div", { class: "source", "data-source": src.name },
        el("div", {},
          pill(src.up ? "up" : "down", src.up ? "published" : "rejected"), " ",
          src.serving_cache ? pill("serving cache", "pending") : null, " ",
          el("strong", {}, src.kind), " ", el("code", {}, src.name)),
        el("div", { class: "muted" },
          `last fetch ${time(src.last_fetch)} (${src.last_result || "none"}); last success ${time(src.last_success)}; ` +
          `${src.modified} modified, ${src.not_modified} not modified, ${src.errors} error(s), ${src.rejected || 0} rejected`),
        src.last_error ? el("div", { class: "note warn" }, src.last_error) : null,
        (src.rejection || []).length
          ? el("div", { class: "note warn" }, "What it holds now was rejected:", el("ul", { class: "errors" }, errorList(src.rejection)))
          : null,
        Object.entries(src.details || {}).map(([k, v]) => detail(k, v, src.details)))));
    $("sources").className = "";
  }
  function detail(key, v, details) {
    const label = key.replace(/_/g, " ");
    // The fleet view's states are shown in the fleet table.
    if (key === "fleet_view") return null;
    if (key === "fleet" && v && typeof v === "object" && !Array.isArray(v)) return fleet(v, details.fleet_view);
    if (Array.isArray(v) && v.length && typeof v[0] === "object" && v[0] !== null) {
      const cols = [...new Set(v.flatMap((row) => Object.keys(row)))];
      return el("div", { class: `detail detail-${key}` }, el("h4", {}, label),
        el("table", {},
          el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c.replace(/_/g, " "))))),
          el("tbody", {}, v.map((row) => el("tr", {}, cols.map((c) =>
            el("td", {}, typeof row[c] === "object" ? JSON.stringify(row[c]) : String(row[c] ?? "–"))))))));
    }
    return el("div", { class: `detail detail-${key}` }, el("span", { class: "muted" }, `${label}: `),
      typeof v === "object" ? el("code", {}, JSON.stringify(v)) : String(v));
  }
  // The fleet view: instance id → the record it keeps in etcd. Version numbers count each
  // process's own publishes, so what tells an instance serving other configuration apart
  // is its hash: a row whose hash is not the running one is the odd one out.
  // With the fleet view, each instance's state (SYNCED, NACKED, SYNCING, STALE) and,
  // on a click, the errors of its NACK.
  function fleet(records, view) {
    const ids = Object.keys(records).sort();
    const states = Object.fromEntries(((view && view.members) || []).map((m) => [m.id, m]));
    const known = ["version", "hash", "pid", "updated", "applied_revision", "applied_at", "nack", "propagation", "release"];
    const extra = [...new Set(ids.flatMap((id) => Object.keys(records[id] || {})))].filter((k) => !known.includes(k));
    const odd = ids.filter((id) => (records[id] || {}).hash !== currentHash);
    const summary = !ids.length
      ? el("span", { class: "muted" }, "no instance registered")
      : odd.length
        ? el("span", { class: "note warn" }, `${odd.length} of ${ids.length} instance(s) serve other configuration than this one`)
        : el("span", { class: "muted" }, `${ids.length} instance(s), all serving this configuration`);
    const applied = view && view.applied;
    const latest = applied
      ? el("span", { class: "muted", id: "fleet-applied" }, ` · revision ${view.revision} applied by ${applied.count} of ${applied.of}`,
        applied.slowest_seconds != null ? `, the slowest in ${(applied.slowest_seconds * 1000).toFixed(1)} ms` : "")
      : null;
    const took = (p) => p && p.seconds != null ? `${(p.seconds * 1000).toFixed(1)} ms (${p.from})` : "–";
    return el("div", { class: "detail detail-fleet" }, el("h4", {}, "fleet"), summary, latest,
      ids.length ? el("table", { class: "fleet" },
        el("thead", {}, el("tr", {}, ["instance", "state", "version", "hash", "applied revision", "took", "pid", "updated", ...extra].map((c) => el("th", {}, c.replace(/_/g, " "))))),
        el("tbody", {}, ids.map((id) => {
          const r = records[id] || {};
          const differs = odd.includes(id);
          return el("tr", { class: differs ? "differs" : "", "data-instance": id },
            el("td", {}, el("code", { class: "instance" }, id)),
            fleetState(states[id] || {}, r.release),
            el("td", { class: "fleet-version nowrap" }, el("strong", {}, String(r.version ?? "–")),
              differs ? [" ", el("span", { class: "pill warning small" }, "differs")] : null),
            el("td", {}, r.hash ? el("code", { title: String(r.hash) }, String(r.hash).slice(0, 8)) : "–"),
            el("td", { class: "nowrap" }, String(r.applied_revision ?? "–")),
            el("td", { class: "nowrap" }, took(r.propagation)),
            el("td", { class: "nowrap" }, String(r.pid ?? "–")),
            el("td", { class: "nowrap", title: time(r.updated) }, time(r.updated).replace(/^.*· /, "")),
            extra.map((k) => el("td", {}, typeof r[k] === "object" ? JSON.stringify(r[k]) : String(r[k] ?? "–"))));
        }))) : null,
      releasesTable(view));
  }
  // A fleet's gray releases, newest first: one in flight with its canaries, the window
  // left and what its judge sees (the canaries' 5xx and p99 against the stable
  // members'), to promote or abort by hand; the others with their decision and why.
  function releasesTable(view) {
    const releases = ((view && view.releases) || []).filter((r) => r.kind === "release");
    if (!releases.length) return null;
    const pct = (f) => (f && f.requests ? `${((100 * f.errors) / f.requests).toFixed(1)}%` : "–");
    const p99 = (f) => (f && f.p99 != null ? `${f.p99.toFixed(1)} ms` : "–");
    const figures = (f) => [`${pct(f)} · ${p99(f)}`, el("div", { class: "muted" }, `${(f && f.requests) || 0} requests`)];
    const left = (r) => {
      const s = Math.max(0, Math.round((r.at || 0) + (r.window_ms || 0) / 1000 - Date.now() / 1000));
      return s ? `${s} s of the window left` : "window passed";
    };
    return el("div", { class: "detail detail-releases" }, el("h4", {}, "gray releases"),
      el("table", { class: "releases" },
        el("thead", {}, el("tr", {}, ["release", "section", "canaries", "state", "canary 5xx · p99", "stable 5xx · p99", "decision"].map((c) => el("th", {}, c)))),
        el("tbody", {}, releases.map((r) => {
          const f = r.figures || {};
          const flying = r.state === "canary";
          return el("tr", { "data-release": r.id, "data-state": r.state || "" },
            el("td", {}, el("code", {}, r.id), el("div", { class: "muted" }, `${r.selector || ""} · by ${r.by || "?"}`)),
            el("td", {}, (r.sections || []).join(", ")),
            el("td", {}, (r.canaries || []).map((c) => el("div", {}, el("code", { class: "instance" }, c)))),
            el("td", { class: "nowrap" },
              pill(flying ? "in flight" : r.state, flying ? "pending" : r.state === "promoted" ? "published" : "rejected"),
              flying ? el("div", { class: "muted" }, left(r)) : null),
            el("td", { class: "nowrap release-canary" }, figures(f.canary)),
            el("td", { class: "nowrap release-stable" }, figures(f.stable)),
            el("td", { class: "release-decision" }, flying
              ? [el("button", { type: "button", "data-release-action": "promote", "data-release-id": r.id }, "Promote"), " ",
                el("button", { type: "button", class: "danger", "data-release-action": "abort", "data-release-id": r.id }, "Abort")]
              : r.why || ""));
        }))));
  }
  async function releaseAction(id, action) {
    try {
      const r = await call("POST", `/release/${encodeURIComponent(id)}/${action}`);
      showResult(el("p", { class: "note good" }, `Release ${r.release}: ${r.decision}${r.why ? ` (${r.why})` : ""}.`));
    } catch (e) {
      showResult(failure(e));
    }
    load();
  }
  function fleetState(member, release) {
    const state = member.state || "–";
    const kind = { SYNCED: "published", NACKED: "rejected", SYNCING: "pending", STALE: "warning" }[state] || "";
    const nack = member.nack;
    return el("td", { class: "fleet-state" }, pill(state, kind),
      release && release.role ? [" ", pill(release.role, release.role === "canary" ? "pending" : "muted")] : null,
      nack ? el("details", { class: "nack" }, el("summary", {}, `NACK of revision ${nack.revision}`),
        el("ul", { class: "errors" }, errorList(nack.errors))) : null);
  }
  function renderResolvers(resolvers) {
    if (!resolvers.length) {
      fill($("resolvers"), "No resolvers.");
      $("resolvers").className = "muted";
      return;
    }
    fill($("resolvers"), el("table", {},
      el("thead", {}, el("tr", {}, ["resolver", "reads", "built by version", "build", "replaced, still held"].map((c) => el("th", {}, c)))),
      el("tbody", {}, resolvers.map((r) => el("tr", { "data-resolver": r.name },
        el("td", {}, el("strong", {}, r.name)),
        el("td", {}, (r.reads || []).join(", ")),
        el("td", { class: "built-at" }, String(r.built_at_version)),
        el("td", {}, `${Number(r.build_ms).toFixed(2)} ms, ${time(r.built_at)}`),
        el("td", {}, String(r.replaced_alive)))))));
    $("resolvers").className = "";
  }

  function renderHistory(h) {
    versions = h.versions || [];
    fill($("history"), versions.map((v) => {
      const running = v.version === current;
      return el("tr", { class: running ? "current" : "", "data-version": String(v.version) },
        el("td", { class: "nowrap" }, el("strong", {}, String(v.version)), running ? el("span", { class: "pill published small" }, "running") : null),
        el("td", {}, time(v.time)),
        el("td", {}, origin(v.origin)),
        el("td", {}, (v.changed || []).join(", ")),
        el("td", {}, el("code", { title: String(v.hash) }, String(v.hash).slice(0, 8))),
        el("td", { class: "end" },
          el("button", { type: "button", class: "quiet small", "data-diff": String(v.version), onclick: () => compare(v.version, current) }, "diff"),
          running ? null : el("button", { type: "button", class: "small", "data-rollback": String(v.version), onclick: () => askRollback(v.version) }, "roll back")));
    }));
    fill($("rejections"), (h.rejections || []).slice(-5).reverse().map((r) =>
      el("li", {}, el("span", { class: "muted" }, `${time(r.at)} · ${origin(r.origin)} · kept ${r.version}`), el("ul", { class: "errors" }, errorList(r.errors)))));
    if (!(h.rejections || []).length) fill($("rejections"), el("li", { class: "muted plain" }, "None kept."));

    for (const id of ["diff-from", "diff-to"]) {
      const select = $(id);
      const was = select.value;
      fill(select, versions.map((v) => el("option", { value: String(v.version) }, `v${v.version}${v.version === current ? " (running)" : ""}`)));
      if (was && versions.some((v) => String(v.version) === was)) select.value = was;
    }
    if (!$("diff-to").dataset.touched) $("diff-to").value = String(current);
    if (!$("diff-from").dataset.touched && versions.length > 1) $("diff-from").value = String(versions[1].version);
  }

  function diffTable(changes) {
    if (!changes.length) return el("p", { class: "muted" }, "No differences.");
    return el("table", { class: "difftable" },
      el("thead", {}, el("tr", {}, el("th", {}, "key"), el("th", {}, "class"), el("th", {}, "old"), el("th", {}, "new"), el("th", {}, "why"))),
      el("tbody", {}, changes.map((c) =>
        el("tr", { class: `c-${c.class}` },
          el("td", {}, el("code", {}, c.key), el("span", { class: "muted small" }, ` ${String(c.kind).replace(/_/g, " ")}`)),
          el("td", {}, pill(c.class)),
          el("td", {}, value(c.old)),
          el("td", {}, value(c.new)),
          el("td", { class: "muted" }, c.reason || "")))));
  }

  async function load() {
    try {
      const [s, h] = await Promise.all([call("GET", "/status"), call("GET", "/history")]);
      renderStatus(s, h);
      renderHistory(h);
      clearTimeout(pollTimer);
      // A canary's figures and background sources change without an event: poll them.
      if (((s.sources || []).length || s.canary) && !document.hidden) pollTimer = setTimeout(load, s.canary ? 1000 : POLL_MS);
      return true;
    } catch (e) {
      if (e.status === 401) needToken(token ? "That token is not accepted here: type the read-only or the admin token." : null);
      // Reads open only to this machine's names, or off without a token: the server says why.
      else if (e.status === 403) needToken(e.message);
      else banner(`Cannot reach the admin: ${e.message}`, "bad");
      return false;
    }
  }
  function reloadSoon() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 100);
  }

  async function compare(from, to) {
    $("diff-from").value = String(from);
    $("diff-to").value = String(to);
    const target = $("diff-result");
    try {
      const d = await call("GET", `/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
      fill(target, el("p", {}, `From v${d.from} to v${d.to}: `, d.worst ? pill(d.worst) : pill("no change", "unchanged")), diffTable(d.changes));
    } catch (e) {
      fill(target, el("p", { class: "note bad" }, e.message));
    }
    return target;
  }

  // ---- actions ----
  function showResult(node) {
    fill($("action-result"), node);
  }
  function failure(e) {
    if (e.status === 401 || e.status === 403) return el("p", { class: "note bad" }, `${e.message}`);
    const errs = e.body && e.body.errors && e.body.errors.length ? el("ul", { class: "errors" }, errorList(e.body.errors)) : null;
    return el("div", {}, el("p", { class: "note bad" }, e.message), errs);
  }

  async function refresh() {
    const force = $("force").checked ? "?force=1" : "";
    try {
      const r = await call("POST", `/refresh${force}`);
      showResult(el("p", { class: "note good" }, `Refresh: ${r.outcome}, version ${r.version}${r.changed && r.changed.length ? ` (changed: ${r.changed.join(", ")})` : ""}.`));
    } catch (e) {
      showResult(failure(e));
    }
    load();
  }

  async function preview() {
    const text = $("overlay").value.trim() || "{}";
    try {
      JSON.parse(text);
    } catch (e) {
      showResult(el("p", { class: "note bad" }, `Not JSON: ${e.message}`));
      return;
    }
    try {
      const p = await call("POST", "/preview", text);
      const verdict = p.unchanged
        ? el("p", { class: "note" }, "Identical to the running version: nothing would be published.")
        : p.would_publish
          ? el("p", { class: "note good" }, `Valid: would publish a new version over ${p.version}.`)
          : el("p", { class: "note bad" }, "Would be rejected:");
      showResult(el("div", {}, verdict, el("ul", { class: "errors" }, errorList(p.errors)), diffTable((p.diff && p.diff.changes) || [])));
    } catch (e) {
      showResult(failure(e));
    }
  }

  async function askRollback(to) {
    const body = $("confirm-body");
    fill(body, el("p", {}, `Roll back: republish version ${to} as a new version. These changes go live:`));
    try {
      const d = await call("GET", `/diff?from=${current}&to=${to}`);
      body.append(el("p", {}, `From the running v${current} to v${to}: `, d.worst ? pill(d.worst) : pill("no change", "unchanged")), diffTable(d.changes));
    } catch (e) {
      body.append(el("p", { class: "note bad" }, `Cannot show the diff: ${e.message}`));
    }
    $("confirm-title").textContent = `Roll back to version ${to}?`;
    $("confirm-ok").textContent = `Roll back to v${to}`;
    const dialog = $("confirm");
    dialog.returnValue = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok") return;
      try {
        const r = await call("POST", `/rollback?to=${encodeURIComponent(to)}`);
        showResult(el("p", { class: "note good" }, `Rolled back: version ${r.version} now holds version ${to}'s configuration.`));
      } catch (e) {
        showResult(failure(e));
      }
      load();
    };
    dialog.showModal();
  }

  // ---- the event stream: fetch + a reader, since EventSource cannot send headers ----
  function live(state, text) {
    const node = $("live");
    node.className = `live ${state}`;
    node.textContent = text;
  }
  function logEvent(kind, data) {
    const now = new Date();
    const at = `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
    let detail = "";
    if (data) {
      if (data.type === "release") detail = `release ${data.release} ${data.step} · this member ${data.role}${data.why ? ` · ${data.why}` : ""}`;
      else if (kind === "published") detail = `version ${data.version}${data.changed && data.changed.length ? ` · changed ${data.changed.join(", ")}` : ""}`;
      else if (kind === "rejected") detail = `kept version ${data.version}`;
      else if (data.error) detail = `version ${data.version} · ${data.error.message || JSON.stringify(data.error)}`;
      else detail = `version ${data.version}`;
      if (data.origin) detail += ` · ${origin(data.origin)}`;
    }
    // The stream names pending and history-store events "other"; their data says which.
    const type = data && data.type ? data.type : kind;
    const item = el("li", { class: `ev-${type}` }, el("span", { class: "muted" }, at), " ", pill(type.replace(/_/g, " "), type === "history_store_failed" ? "rejected" : type), " ", detail,
      data && data.errors ? el("ul", { class: "errors" }, errorList(data.errors)) : null);
    const log = $("events");
    const none = $("no-events");
    if (none) none.remove();
    log.prepend(item);
    while (log.children.length > 200) log.lastChild.remove();
  }
  function handle(block) {
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue; // keep-alive comment
      if (line.startsWith("event:")) kind = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length) return;
    let parsed = null;
    try { parsed = JSON.parse(data.join("\n")); } catch (_) { parsed = null; }
    logEvent(kind, parsed);
    reloadSoon();
  }
  async function openStream() {
    if (stream || document.hidden) return;
    const controller = new AbortController();
    stream = controller;
    live("connecting", "connecting…");
    try {
      const response = await fetch(base + "/events", { headers: headers({ accept: "text/event-stream" }), signal: controller.signal, cache: "no-store" });
      if (response.status === 401 || response.status === 403) {
        stream = null;
        live("off", "needs token");
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      live("on", "live");
      // How many streams this tab has opened, for whoever checks it reconnects.
      $("live").dataset.opened = String(Number($("live").dataset.opened || 0) + 1);
      retry = 1000;
      // Anything missed while the stream was closed.
      load();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          handle(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    if (stream !== controller) return;
    stream = null;
    if (document.hidden) return;
    live("off", "reconnecting…");
    setTimeout(openStream, retry);
    retry = Math.min(retry * 2, 15000);
  }
  function closeStream(text) {
    if (stream) stream.abort();
    stream = null;
    live("off", text || "paused");
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) closeStream("paused (tab hidden)");
    else { load(); openStream(); }
  });

  // ---- wiring ----
  $("token").value = token ? "••••••••" : "";
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = $("token").value.trim();
    if (typed && typed !== "••••••••") {
      token = typed;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "••••••••";
    }
    closeStream("reconnecting…");
    load().then((ok) => { if (ok) openStream(); });
  });
  $("token-forget").addEventListener("click", () => {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    closeStream("offline");
    load().then((ok) => { if (ok) openStream(); });
  });
  $("refresh").addEventListener("click", refresh);
  $("preview").addEventListener("click", preview);
  $("canary-start").addEventListener("click", () => {
    const text = $("overlay").value.trim() || "{}";
    try { JSON.parse(text); } catch (e) { showResult(el("p", { class: "note bad" }, `Not JSON: ${e.message}`)); return; }
    canaryAction("/canary", text);
  });
  $("sources").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-release-action]");
    if (button) releaseAction(button.dataset.releaseId, button.dataset.releaseAction);
  });
  $("canary-promote").addEventListener("click", () => canaryAction("/canary/promote"));
  $("canary-abort").addEventListener("click", () => canaryAction("/canary/abort"));
  $("diff-form").addEventListener("submit", (event) => {
    event.preventDefault();
    compare($("diff-from").value, $("diff-to").value);
  });
  for (const id of ["diff-from", "diff-to"]) $(id).addEventListener("change", () => { $(id).dataset.touched = "1"; });
  $("confirm-cancel").addEventListener("click", () => $("confirm").close("cancel"));

  load().then((ok) => { if (ok) openStream(); });
})();
