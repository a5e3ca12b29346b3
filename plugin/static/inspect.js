// shoprank inspector: plain JavaScript, no dependencies, no network beyond this server.
"use strict";
(function () {
  const API = "/_shoprank/inspect/api";
  const body = document.body;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fmt(value, digits) {
    if (typeof value !== "number") return value === null || value === undefined ? "–" : value;
    return value.toFixed(digits === undefined ? 3 : digits);
  }

  async function getJSON(url, options) {
    const resp = await fetch(url, options);
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

  // ---- compare ------------------------------------------------------------------------

  function moveBadge(hit, column) {
    if (column === 0) return el("span", { class: "move same" }, "");
    if (hit.delta === null || hit.delta === undefined)
      return el("span", { class: "move new", title: "not in the previous column" }, "new");
    if (hit.delta > 0)
      return el("span", { class: "move up", title: `up ${hit.delta} vs previous column` },
        `▲${hit.delta}`);
    if (hit.delta < 0)
      return el("span", { class: "move down", title: `down ${-hit.delta} vs previous column` },
        `▼${-hit.delta}`);
    return el("span", { class: "move same", title: "same rank" }, "=");
  }

  function explainTable(hit) {
    const parts = [];
    const ranks = [["rank", hit.rank]];
    if (hit.rank_before !== null && hit.rank_before !== undefined)
      ranks.push(["rank before reranking", hit.rank_before]);
    ranks.push(["score", fmt(hit.score, 4)]);
    parts.push(el("table", { class: "ranks" },
      el("tbody", {}, ranks.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))))));
    if (hit.legs && Object.keys(hit.legs).length) {
      parts.push(el("table", { class: "legs" },
        el("thead", {}, el("tr", {}, el("th", {}, "leg"), el("th", {}, "rank"),
          el("th", {}, "score"))),
        el("tbody", {}, Object.entries(hit.legs).map(([leg, v]) =>
          el("tr", {}, el("td", {}, leg), el("td", {}, v.rank), el("td", {}, fmt(v.score, 4)))))));
    }
    if (hit.features && Object.keys(hit.features).length) {
      const contrib = hit.contributions || {};
      const maxAbs = Math.max(1e-9, ...Object.values(contrib).map((v) => Math.abs(v)));
      const rows = Object.entries(hit.features).sort((a, b) =>
        Math.abs(contrib[b[0]] || 0) - Math.abs(contrib[a[0]] || 0));
      parts.push(el("table", { class: "features" },
        el("thead", {}, el("tr", {}, el("th", {}, "feature"), el("th", {}, "value"),
          el("th", {}, "contribution"))),
        el("tbody", {}, rows.map(([name, value]) => {
          const c = contrib[name];
          const width = c === undefined ? 0 : Math.round((Math.abs(c) / maxAbs) * 60);
          return el("tr", {}, el("td", {}, name), el("td", {}, fmt(value)),
            el("td", {}, el("span", { class: c < 0 ? "bar neg" : "bar",
              style: `width:${width}px` }), " ", fmt(c)));
        }))));
    } else {
      parts.push(el("p", { class: "sub no-features" },
        "No ranker features for this hit (no learned ranker ran in this mode)."));
    }
    return el("div", { class: "explain" }, parts);
  }

  function hitItem(hit, column) {
    const price = typeof hit.price === "number" ? hit.price.toFixed(2) : "";
    const item = el("li", { class: "hit", "data-id": hit.id },
      el("div", { class: "row" },
        el("span", { class: "rank" }, hit.rank),
        moveBadge(hit, column),
        hit.image ? el("img", { src: hit.image, alt: "", loading: "lazy",
          onerror: (e) => e.target.remove() }) : null,
        el("div", {},
          el("div", { class: "title" }, hit.title || hit.id),
          el("div", { class: "sub" }, [hit.brand, price, hit.id].filter(Boolean).join(" · ")))));
    item.addEventListener("click", () => {
      const open = item.querySelector(".explain");
      if (open) open.remove();
      else item.append(explainTable(hit));
    });
    item.addEventListener("mouseenter", () => link(hit.id, true));
    item.addEventListener("mouseleave", () => link(hit.id, false));
    return item;
  }

  function link(id, on) {
    for (const node of document.querySelectorAll(".hit")) {
      if (node.dataset.id === id) node.classList.toggle("linked", on);
    }
  }

  function understanding(result) {
    const box = document.getElementById("understanding");
    box.replaceChildren();
    const items = [];
    const intent = result.intent;
    if (intent) {
      const cats = (intent.categories || []).slice(0, 3).map((c) =>
        Array.isArray(c) ? `${c[0]} (${fmt(c[1], 2)})` : `${c.category} (${fmt(c.probability, 2)})`);
      if (cats.length) items.push(["category", cats.join(", ")]);
      for (const [k, v] of Object.entries(intent.attributes || {}))
        items.push([k, [].concat(v).join(", ")]);
      if (intent.price) items.push(["price", JSON.stringify(intent.price)]);
      if (intent.query_type) items.push(["query type", intent.query_type]);
    }
    const rewrite = result.rewrite;
    if (rewrite && (Array.isArray(rewrite) ? rewrite.length : Object.keys(rewrite).length)) {
      const describe = (a) => {
        if (a.action === "spelling") return `spelling: "${a.before}" → "${a.after}"`;
        const what = a.values || a.value || a.words || "";
        return [a.action || a.type, a.field, [].concat(what).join("/")].filter(Boolean).join(" ");
      };
      const text = Array.isArray(rewrite) ? rewrite.map(describe).join("; ")
        : JSON.stringify(rewrite);
      items.push(["rewrite", text]);
    }
    if (result.relaxation) items.push(["relaxed", result.relaxation]);
    const dl = el("dl", { class: "understanding", id: "intent" },
      el("dt", {}, "query"), el("dd", {}, result.query));
    if (!items.length) dl.append(el("dd", { class: "sub" }, "no predicted intent or rewrite"));
    for (const [k, v] of items) dl.append(el("dt", {}, k), el("dd", {}, v));
    const same = new URLSearchParams({ q: result.query, index: result.index });
    dl.append(el("dd", {}, el("a", { id: "diversity-link",
      href: `/_shoprank/inspect/diversity?${same}` }, "with and without diversity →")));
    box.append(dl);
  }

  function renderColumns(result) {
    const box = document.getElementById("columns");
    box.replaceChildren();
    result.columns.forEach((col, i) => {
      const notes = [...(col.notes || []), ...(col.degraded || []).map((d) => `degraded: ${d}`)];
      box.append(el("div", { class: "column", "data-mode": col.mode },
        el("h2", {}, col.mode),
        el("div", { class: "meta" },
          `${col.total ?? 0} hits · ${fmt(col.took_ms, 1)} ms`,
          col.mode_applied !== col.mode ? ` · ran as ${col.mode_applied}` : "",
          col.model_version ? ` · model ${col.model_version}` : ""),
        notes.length ? el("div", { class: "meta notes" }, notes.join("; ")) : null,
        col.hits.length ? el("ol", { class: "hits" }, col.hits.map((h) => hitItem(h, i)))
          : el("p", { class: "sub" }, "no results")));
    });
  }

  async function compare(event) {
    if (event) event.preventDefault();
    const params = new URLSearchParams();
    const shown = new URLSearchParams();  // the page's own URL: ?q=&user=&index=&size=
    for (const id of ["q", "user", "index", "size"]) {
      const value = document.getElementById(id).value.trim();
      if (value) params.set(id === "user" ? "user_id" : id, value);
      if (value) shown.set(id, value);
    }
    history.replaceState(null, "", `?${shown}`);
    document.getElementById("landing").hidden = true;
    status("compare-status", "searching…");
    try {
      const result = await getJSON(`${API}/compare?${params}`);
      understanding(result);
      renderColumns(result);
      status("compare-status", "");
    } catch (err) {
      status("compare-status", err.message, true);
    }
  }

  // ---- diversity: one search without and with ext.shoprank.diversity ------------------

  function describeSpec(spec) {
    if (!spec || spec === "none" || spec.type === "none") return "without diversity";
    if (spec.type === "mmr") return `with mmr, λ = ${spec.lambda}`;
    return `with cap: ≤ ${spec.max} per ${spec.field}`;
  }

  function diversityHit(hit, column) {
    const facet = (name) => (hit[name] === null || hit[name] === undefined ? "–" : hit[name]);
    const shown = [hit.brand ? `brand ${hit.brand}` : null,
      hit.category ? `category ${hit.category}` : null].filter(Boolean).join(" · ");
    return el("li", { class: "hit", "data-id": hit.id, "data-brand": facet("brand"),
      "data-category": facet("category") },
      el("div", { class: "row" },
        el("span", { class: "rank" }, hit.rank),
        column === 0 ? el("span", { class: "move same" }, "") : moveBadge(hit, column),
        el("div", {},
          el("div", { class: "title" }, hit.title || hit.id),
          el("div", { class: "sub facets" }, shown || hit.id),
          column && hit.rank_before_diversity
            ? el("div", { class: "sub" }, `rank before diversity ${hit.rank_before_diversity}`)
            : null)));
  }

  function renderDiversity(result) {
    const box = document.getElementById("diversity-columns");
    box.replaceChildren();
    result.columns.forEach((col, i) => {
      const notes = [...(col.notes || []), ...(col.degraded || []).map((d) => `degraded: ${d}`)];
      const list = col.hits.map((h) => diversityHit(h, i));
      for (const item of list) {
        item.addEventListener("mouseenter", () => link(item.dataset.id, true));
        item.addEventListener("mouseleave", () => link(item.dataset.id, false));
      }
      box.append(el("div", { class: "column", "data-column": col.column },
        el("h2", {}, describeSpec(col.diversity)),
        el("div", { class: "meta" },
          el("span", { class: "ild", "data-ild": col.ild }, `ILD ${fmt(col.ild, 3)}`),
          ` · ${col.distinct.brand} brands · ${col.distinct.category} categories`,
          ` · ${col.total ?? 0} hits`,
          col.mode_applied !== result.mode ? ` · ran as ${col.mode_applied}` : ""),
        el("div", { class: "meta" }, `stages: ${(col.stages || []).join(" → ")}`),
        notes.length ? el("div", { class: "meta notes" }, notes.join("; ")) : null,
        list.length ? el("ol", { class: "hits" }, list) : el("p", { class: "sub" }, "no results")));
    });
  }

  const DIVERSITY_FIELDS = { "d-q": "q", "d-mode": "mode", "d-type": "type", "d-lambda": "lambda",
    "d-field": "field", "d-max": "max", "d-user": "user_id", "d-index": "index", "d-size": "size" };

  async function diversity(event) {
    if (event) event.preventDefault();
    const params = new URLSearchParams();
    for (const [id, name] of Object.entries(DIVERSITY_FIELDS)) {
      const value = document.getElementById(id).value.trim();
      if (value) params.set(name, value);
    }
    history.replaceState(null, "", `?${params}`);
    status("diversity-status", "searching…");
    try {
      renderDiversity(await getJSON(`${API}/diversity?${params}`));
      status("diversity-status", "");
    } catch (err) {
      status("diversity-status", err.message, true);
    }
  }

  // ---- landing: examples from the catalog, recent searches, the compare link ----------

  function inspectUrl(q, index, user) {
    const params = new URLSearchParams({ q });
    if (index) params.set("index", index);
    if (user) params.set("user", user);
    return `/_shoprank/inspect?${params}`;
  }

  function exampleItem(ex, index) {
    return el("li", { "data-shows": ex.shows },
      el("a", { href: inspectUrl(ex.query, index, ex.user), class: "example" }, ex.query),
      el("span", { class: "tag" }, ex.shows),
      ex.user ? el("span", { class: "tag user" }, `as user ${ex.user}`) : null,
      el("div", { class: "sub" }, ex.why));
  }

  function recentItems(searches) {
    const seen = new Set();
    const items = [];
    for (const s of searches) {
      const key = `${s.index}\u0000${s.user_query}`;
      if (!s.user_query || seen.has(key)) continue;
      seen.add(key);
      items.push(el("li", { "data-query-id": s.query_id },
        el("a", { href: inspectUrl(s.user_query, s.index), class: "recent" }, s.user_query),
        el("div", { class: "sub" }, [new Date(s.timestamp).toLocaleString(), s.mode,
          `${s.total_hits} hits`, `index ${s.index}`].join(" · "))));
      if (items.length === 8) break;
    }
    return items;
  }

  async function landingExamples(index, explicit, indices) {
    try {
      return [index, await getJSON(`${API}/examples?${new URLSearchParams({ index })}`)];
    } catch (err) {
      const other = indices.find((i) => i.index !== index);
      if (explicit || !other) throw err;
      // The configured index is not here: inspect the first one that is.
      status("landing-status", `SHOPRANK_PRODUCT_INDEX [${index}] does not exist here; ` +
        `showing [${other.index}].`);
      const found = await getJSON(`${API}/examples?${new URLSearchParams({ index: other.index })}`);
      return [other.index, found];
    }
  }

  async function landing(index, explicit) {
    document.getElementById("landing").hidden = false;
    const list = document.getElementById("example-list");
    const recent = document.getElementById("recent-list");
    const compareLink = document.getElementById("compare-link");
    let firstQuery = null;
    let indices = [];
    try {
      indices = (await getJSON(`${API}/indices`)).indices;
    } catch (err) { /* the list is a convenience */ }
    try {
      const [shown, data] = await landingExamples(index, explicit, indices);
      const field = document.getElementById("index");
      if (field.value === index) field.value = shown;  // unless the user typed another one
      document.getElementById("landing-index").textContent =
        `Inspecting index ${shown} (${data.total} products, generation ${data.generation}).`;
      list.replaceChildren(...data.examples.map((ex) => exampleItem(ex, shown)));
      if (!data.examples.length) list.append(el("li", { class: "sub" }, "the index is empty"));
      if (data.examples.length) firstQuery = inspectUrl(data.examples[0].query, shown);
    } catch (err) {
      status("landing-status", err.message, true);
    }
    try {
      const data = await getJSON(`${API}/searches?limit=50`);
      const items = recentItems(data.searches);
      recent.replaceChildren(...items);
      if (!items.length) recent.append(el("li", { class: "sub" }, data.enabled
        ? "No searches logged yet: searches sent to /{index}/_search show here."
        : "Search logging is off (SHOPRANK_SEARCH_LOG=false)."));
      const latest = data.searches.find((s) => s.user_query);
      if (!firstQuery && latest) firstQuery = inspectUrl(latest.user_query, latest.index);
    } catch (err) {
      recent.replaceChildren(el("li", { class: "sub error" }, err.message));
    }
    if (firstQuery) {
      compareLink.href = firstQuery;
      compareLink.textContent =
        `Compare lexical · hybrid · full for “${new URL(firstQuery, location.href).searchParams.get("q")}” →`;
    } else compareLink.hidden = true;
    if (indices.length) {
      document.getElementById("index-list").replaceChildren("Indices here: ",
        ...indices.flatMap((i, n) => [n ? " · " : "",
          el("a", { href: `/_shoprank/inspect?${new URLSearchParams({ index: i.index })}` },
            i.index), ` (${i.doc_count ?? "?"} products)`]));
    }
  }

  // ---- recent searches ---------------------------------------------------------------

  function searchDetail(doc) {
    const box = document.getElementById("search-detail");
    const events = doc.events || [];
    const byProduct = {};
    for (const e of events) (byProduct[e.product_id] = byProduct[e.product_id] || []).push(e.type);
    box.replaceChildren(el("h3", {}, `"${doc.user_query}" — ${doc.query_id}`),
      el("table", { class: "grid", id: "window" },
        el("thead", {}, el("tr", {}, ["rank", "before", "move", "product", "score", "events"]
          .map((h) => el("th", {}, h)))),
        el("tbody", {}, (doc.window || []).map((w) => {
          const shift = w.rank_before - w.rank_after;
          return el("tr", {}, el("td", {}, w.rank_after), el("td", {}, w.rank_before),
            el("td", { class: shift > 0 ? "move up" : shift < 0 ? "move down" : "move same" },
              shift > 0 ? `▲${shift}` : shift < 0 ? `▼${-shift}` : "="),
            el("td", {}, w.object_id), el("td", {}, fmt(w.score, 4)),
            el("td", {}, (byProduct[w.object_id] || []).join(", ")));
        }))),
      el("p", { class: "sub" }, `latency ${JSON.stringify(doc.latency_ms || {})}`));
  }

  async function searches(event) {
    if (event) event.preventDefault();
    const params = new URLSearchParams({ limit: "100" });
    const q = document.getElementById("s-q").value.trim();
    if (q) params.set("q", q);
    if (document.getElementById("s-zero").checked) params.set("zero_results", "true");
    status("searches-status", "loading…");
    try {
      const data = await getJSON(`${API}/searches?${params}`);
      const tbody = document.querySelector("#searches tbody");
      tbody.replaceChildren(...data.searches.map((s) => {
        const row = el("tr", { "data-query-id": s.query_id },
          el("td", {}, new Date(s.timestamp).toLocaleString()),
          el("td", {}, s.user_query), el("td", {}, s.mode),
          el("td", { class: "num" }, s.total_hits),
          el("td", { class: "num" }, s.summary.click), el("td", { class: "num" }, s.summary.add_to_cart),
          el("td", { class: "num" }, s.summary.purchase),
          el("td", {}, s.client_id ? s.client_id.slice(0, 8) : "–"),
          el("td", { class: "num" }, `${fmt((s.latency_ms || {}).total, 1)} ms`),
          el("td", {}, s.model_version || "–"));
        row.addEventListener("click", () => searchDetail(s));
        return row;
      }));
      status("searches-status", data.enabled
        ? `${data.searches.length} shown of ${data.total} logged searches`
        : "search logging is off (SHOPRANK_SEARCH_LOG=false)");
    } catch (err) {
      status("searches-status", err.message, true);
    }
  }

  // ---- judgments ---------------------------------------------------------------------

  function renderJudgments(data) {
    const box = document.getElementById("judgments");
    if (!data.loaded) {
      box.replaceChildren(el("p", { class: "sub" },
        "No judgments loaded: choose a CSV file (or set SHOPRANK_JUDGMENTS_FILE)."));
      return;
    }
    const modes = Object.keys(data.modes);
    const best = (metric) => Math.max(...modes.map((m) => data.modes[m][metric]));
    const metrics = [["ndcg", `nDCG@${data.k}`], ["mrr", "MRR"], ["recall", `recall@${data.k}`]];
    box.replaceChildren(
      el("p", { class: "sub" }, `${data.queries} judged queries from ${data.source}`),
      el("table", { class: "grid", id: "judgment-summary" },
        el("thead", {}, el("tr", {}, el("th", {}, "mode"), metrics.map(([, l]) => el("th", {}, l)))),
        el("tbody", {}, modes.map((m) => el("tr", { "data-mode": m }, el("td", {}, m),
          metrics.map(([key]) => el("td", {
            class: data.modes[m][key] === best(key) ? "num best" : "num" },
          fmt(data.modes[m][key], 4))))))),
      el("h3", {}, "per query (nDCG)"),
      el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, el("th", {}, "query"), modes.map((m) => el("th", {}, m)))),
        el("tbody", {}, data.per_query.map((row) => el("tr", {}, el("td", {}, row.query),
          modes.map((m) => el("td", { class: "num" }, fmt(row.ndcg[m], 3))))))));
  }

  async function judgments(event) {
    if (event) event.preventDefault();
    const k = document.getElementById("j-k").value || "10";
    try {
      const file = document.getElementById("j-file").files[0];
      if (file) {
        status("judgments-status", "loading judgments…");
        await getJSON(`${API}/judgments`, { method: "POST", body: await file.text() });
      }
      status("judgments-status", "running every judged query in each mode…");
      const params = new URLSearchParams({ k, index: body.dataset.index });
      renderJudgments(await getJSON(`${API}/judgments?${params}`));
      status("judgments-status", "");
    } catch (err) {
      status("judgments-status", err.message, true);
    }
  }

  // ---- start ---------------------------------------------------------------------------

  const view = body.dataset.view;
  document.getElementById(`view-${view}`).hidden = false;
  for (const a of document.querySelectorAll("[data-nav]"))
    a.classList.toggle("active", a.dataset.nav === view);
  const url = new URLSearchParams(location.search);
  const index = url.get("index") || body.dataset.index;
  if (view === "compare") {
    document.getElementById("index").value = index;
    document.getElementById("q").value = url.get("q") || "";
    document.getElementById("user").value = url.get("user") || url.get("user_id") || "";
    if (url.get("size")) document.getElementById("size").value = url.get("size");
    document.getElementById("compare-form").addEventListener("submit", compare);
    if (url.get("q")) compare();
    else landing(index, url.has("index"));
  } else if (view === "diversity") {
    document.getElementById("d-index").value = index;
    for (const [id, name] of Object.entries(DIVERSITY_FIELDS)) {
      if (name !== "index" && url.get(name)) document.getElementById(id).value = url.get(name);
    }
    document.getElementById("diversity-form").addEventListener("submit", diversity);
    if (url.get("q")) diversity();
  } else if (view === "searches") {
    document.getElementById("searches-form").addEventListener("submit", searches);
    searches();
  } else {
    body.dataset.index = index;
    document.getElementById("judgments-form").addEventListener("submit", judgments);
    judgments();
  }
})();
