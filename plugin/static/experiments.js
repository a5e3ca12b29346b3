// shoprank inspector, experiment pages: plain JavaScript, no dependencies, no network
// beyond this server. The plot is an inline SVG drawn here.
"use strict";
(function () {
  const API = "/_shoprank/inspect/api/experiments";
  const PAGE = "/_shoprank/inspect/experiments";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const body = document.body;
  const KIND_LABELS = { click: "click-through", add_to_cart: "add-to-cart", purchase: "purchase" };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function getJSON(url) {
    const resp = await fetch(url);
    const data = await resp.json();
    if (!resp.ok) {
      const reason = data && data.error ? data.error.reason : resp.statusText;
      throw new Error(reason);
    }
    return data;
  }

  function status(id, text, isError) {
    const node = document.getElementById(id);
    node.textContent = text || "";
    node.classList.toggle("error", Boolean(isError));
  }

  function pct(value, digits) {
    if (typeof value !== "number") return "–";
    return `${(value * 100).toFixed(digits === undefined ? 1 : digits)} %`;
  }

  function pValue(p) {
    if (typeof p !== "number") return "–";
    return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
  }

  function when(ts) {
    return typeof ts === "number" ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–";
  }

  function config(cfg) {
    return el("span", { class: "config" },
      Object.entries(cfg || {}).flatMap(([k, v], i) => [i ? " " : "", el("code", {}, `${k}=${v}`)]));
  }

  function verdict(decision) {
    if (!decision) return el("span", { class: "verdict" }, "–");
    const kind = decision.recorded ? "recorded" : "preview";
    return el("span", { class: `verdict ${decision.action}`, "data-action": decision.action,
      "data-recorded": String(Boolean(decision.recorded)), title: decision.message || "" },
      `${decision.action} · ${decision.reason} (${kind})`);
  }

  function progressBar(progress) {
    const share = Math.max(0, Math.min(1, progress.share || 0));
    return el("span", { class: "progress-wrap", "data-done": progress.done,
      "data-horizon": progress.horizon },
      el("span", { class: "progress", title: pct(share) },
        el("span", { style: `width: ${(share * 100).toFixed(1)}%` })),
      ` ${progress.done} of ${progress.horizon} ${progress.unit}`);
  }

  // ---- list ---------------------------------------------------------------------------

  async function list() {
    status("list-status", "loading…");
    let data;
    try {
      data = await getJSON(API);
    } catch (err) {
      status("list-status", `Could not load the experiments: ${err.message}`, true);
      return;
    }
    const tbody = document.querySelector("#experiments tbody");
    tbody.replaceChildren(...data.experiments.map((e) => el("tr", { "data-id": e.id },
      el("td", {}, el("a", { href: `${PAGE}/${encodeURIComponent(e.id)}` }, e.id)),
      el("td", {}, e.method === "ab" ? "A/B" : "interleaving"),
      el("td", { class: "state" }, e.status),
      el("td", {}, config(e.control)),
      el("td", {}, config(e.challenger)),
      el("td", { class: "num searches" }, e.searches),
      el("td", {}, progressBar(e.progress)),
      el("td", {}, verdict(e.decision)))));
    status("list-status", data.total ? `${data.total} experiment${data.total > 1 ? "s" : ""}`
      : "No experiments yet.");
  }

  // ---- one experiment -----------------------------------------------------------------

  function rateCell(arm, kind, rate) {
    return el("td", { class: "num rate", "data-arm": arm, "data-kind": kind,
      "data-rate": rate.rate, "data-successes": rate.successes, "data-n": rate.n },
      pct(rate.rate), " ", el("span", { class: "ci" }, `[${pct(rate.low)} – ${pct(rate.high)}]`));
  }

  function armsTable(data) {
    const ev = data.evidence;
    const kinds = Object.keys(KIND_LABELS);
    const head = el("tr", {}, el("th", {}, "arm"), el("th", {}, "configuration"),
      el("th", { class: "num" }, "searches"),
      kinds.map((k) => el("th", { class: "num" }, `${KIND_LABELS[k]} (95 % CI)`)),
      el("th", { class: "num" }, "zero results"), el("th", { class: "num" }, "p95 latency"));
    const rows = ["A", "B"].map((arm) => {
      const a = ev.arms[arm];
      return el("tr", { "data-arm": arm },
        el("td", {}, arm === "A" ? "A · control" : "B · challenger"),
        el("td", {}, config(arm === "A" ? data.control : data.challenger)),
        el("td", { class: "num searches" }, a.searches),
        kinds.map((k) => rateCell(arm, k, a.rates[k])),
        rateCell(arm, "zero_results", a.zero_result_rate),
        el("td", { class: "num" }, typeof a.latency_p95_ms === "number"
          ? `${a.latency_p95_ms.toFixed(1)} ms` : "–"));
    });
    return el("table", { id: "arms", class: "grid" }, el("thead", {}, head), el("tbody", {}, rows));
  }

  function comparison(data) {
    const ev = data.evidence;
    const seq = ev.sequential;
    const facts = [];
    if (data.method === "interleave") {
      const pref = ev.preference;
      facts.push(["wins A (control)", el("span", { id: "wins-a" }, pref.wins_control)]);
      facts.push(["wins B (challenger)", el("span", { id: "wins-b" }, pref.wins_challenger)]);
      facts.push(["ties", el("span", { id: "ties" }, pref.ties)]);
      const share = pref.challenger_share;
      facts.push(["B's share of decided queries", el("span", { id: "share-b", "data-rate": share.rate },
        pct(share.rate), " ", el("span", { class: "ci" }, `[${pct(share.low)} – ${pct(share.high)}]`))]);
      facts.push(["sign test p (fixed horizon)", el("span", { id: "sign-p" }, pValue(pref.p_value))]);
    } else {
      const diff = ev.difference;
      facts.push([`B − A, ${KIND_LABELS[data.metric]}`, el("span", { id: "diff", "data-diff": diff.diff },
        `${diff.diff >= 0 ? "+" : ""}${pct(diff.diff, 2)} `,
        el("span", { class: "ci" }, `[${pct(diff.low, 2)} – ${pct(diff.high, 2)}]`))]);
      facts.push(["z-test p (fixed horizon)", el("span", { id: "z-p" }, pValue(diff.p_value))]);
    }
    facts.push(["always-valid p (sequential)", el("span", { id: "p-value", "data-p": seq.p_value },
      pValue(seq.p_value))]);
    facts.push(["significant at α", el("span", { id: "significant" },
      `${seq.significant ? "yes" : "no"} (α = ${data.experiment.alpha}; leader ${seq.leader}` +
      `${seq.enough_data ? "" : "; not enough data yet"})`)]);
    facts.push(["horizon", el("span", { id: "horizon" },
      `${data.progress.horizon} ${data.progress.unit}` +
      (data.horizon_rule === "mde" ? ` (from mde ${data.experiment.mde}, power ${data.experiment.power})`
        : " (max_searches)"))]);
    facts.push(["progress", progressBar(data.progress)]);
    return el("dl", { class: "facts" }, facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  }

  function decisionPanel(data) {
    const d = data.decision;
    if (!d) return el("p", { id: "decision" }, "No decision (a draft).");
    return el("div", { id: "decision" },
      el("p", {}, verdict(d), d.recorded ? ` at ${when(d.at)}` : " — what a look now would decide"),
      el("p", { class: "message" }, d.message || ""));
  }

  function historyTable(data) {
    if (!data.decisions.length) return el("p", { id: "history", class: "sub" }, "No decision recorded yet.");
    return el("table", { id: "history", class: "grid" },
      el("thead", {}, el("tr", {}, ["time", "action", "reason", "searches", "p", "message"]
        .map((h) => el("th", {}, h)))),
      el("tbody", {}, data.decisions.map((d) => el("tr", {},
        el("td", {}, when(d.at)), el("td", {}, d.action), el("td", {}, d.reason),
        el("td", { class: "num" }, d.searches === null || d.searches === undefined ? "–" : d.searches),
        el("td", { class: "num" }, pValue(d.p_value)), el("td", {}, d.message || "")))));
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const pow = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= value) return m * pow;
    return 10 * pow;
  }

  // The running metric with its interval band, per series; x = searches so far.
  function plot(data) {
    const p = data.plot;
    const W = 900, L = 56, R = 16, B = 40;
    const T = 16 + 16 * p.series.length; // the legend sits above the chart
    const H = 300 + T;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `${p.y} over ${p.x}`, "data-method": p.method });
    const points = p.series.flatMap((s) => s.points);
    if (!points.length) {
      root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" },
        "No searches with events yet: the plot starts with the first search."));
      return root;
    }
    const xMax = Math.max(...points.map((q) => q[0]), 1);
    const yMax = p.reference === null ? niceMax(Math.max(...points.map((q) => q[3]))) : 1;
    const x = (v) => L + (v / xMax) * (W - L - R);
    const y = (v) => T + (1 - v / yMax) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      root.append(svg("line", { class: "grid-line", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      root.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, pct(v, 0)));
    }
    for (let i = 0; i <= 4; i++) {
      const v = Math.round((xMax * i) / 4);
      root.append(svg("text", { x: x(v), y: H - B + 16, "text-anchor": "middle" }, v));
    }
    root.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    root.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    root.append(svg("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, `${p.x} so far`));
    root.append(svg("text", { x: 12, y: T + (H - T - B) / 2, "text-anchor": "middle",
      transform: `rotate(-90 12 ${T + (H - T - B) / 2})` }, p.y));
    const xy = (q, i) => `${x(q[0]).toFixed(1)},${y(q[i]).toFixed(1)}`;
    for (const s of p.series) {
      if (!s.points.length) continue;
      const upper = s.points.map((q) => xy(q, 3));
      const lower = s.points.map((q) => xy(q, 2)).reverse();
      root.append(svg("path", { class: `band band-${s.name}`, "data-series": s.name,
        d: `M${upper.join("L")}L${lower.join("L")}Z` }));
    }
    if (p.reference !== null) {
      root.append(svg("line", { class: "reference", x1: L, x2: W - R, y1: y(p.reference),
        y2: y(p.reference), "data-value": p.reference }));
    }
    p.series.forEach((s, i) => {
      if (!s.points.length) return;
      root.append(svg("path", { class: `line line-${s.name}`, "data-series": s.name,
        "data-points": s.points.length, d: `M${s.points.map((q) => xy(q, 1)).join("L")}` }));
      const last = s.points[s.points.length - 1];
      root.append(svg("circle", { class: `dot dot-${s.name}`, cx: x(last[0]), cy: y(last[1]), r: 3 }));
      root.append(svg("rect", { class: `dot-${s.name}`, x: L, y: 6 + 16 * i, width: 10, height: 10 }));
      root.append(svg("text", { x: L + 16, y: 15 + 16 * i, class: `legend legend-${s.name}` },
        `${s.label}: ${pct(last[1])} after ${last[0]} ${p.x}`));
    });
    return root;
  }

  async function detail() {
    const id = body.dataset.experiment;
    status("detail-status", "loading…");
    let data;
    try {
      data = await getJSON(`${API}/${encodeURIComponent(id)}`);
    } catch (err) {
      status("detail-status", `Could not load experiment [${id}]: ${err.message}`, true);
      return;
    }
    document.title = `shoprank inspector · ${data.id}`;
    const method = data.method === "ab" ? "A/B" : "team-draft interleaving";
    const caption = data.method === "ab"
      ? `Running ${KIND_LABELS[data.metric]} rate of each arm with its 95 % interval, in log order.`
      : "Running share of decided queries won by B (the challenger), with its 95 % interval; the dashed line is 50 %.";
    document.getElementById("detail").replaceChildren(
      el("h1", {}, data.id, " ", el("span", { class: "tag", id: "status" }, data.status)),
      el("p", { class: "sub" }, `${method} on ${KIND_LABELS[data.metric]} · created ${when(data.created_at)}` +
        (data.started_at ? ` · started ${when(data.started_at)}` : "") +
        (data.ended_at ? ` · ended ${when(data.ended_at)}` : "")),
      el("h2", { class: "section" }, "Decision"), el("div", { class: "panel" }, decisionPanel(data)),
      el("h2", { class: "section" }, "Arms"), armsTable(data),
      el("h2", { class: "section" }, data.method === "ab" ? "Difference and tests" : "Preference and tests"),
      el("div", { class: "panel" }, comparison(data)),
      el("h2", { class: "section" }, "Primary metric over the experiment"),
      el("div", { id: "plot", class: "panel" }, el("p", { class: "sub" }, caption), plot(data)),
      el("h2", { class: "section" }, "Decisions recorded"), historyTable(data));
    status("detail-status", "");
  }

  const view = body.dataset.view === "detail" ? "detail" : "list";
  document.getElementById(`view-${view}`).hidden = false;
  if (view === "detail") detail();
  else list();
})();
