// Records every HTTP exchange a frontend library makes (it calls the global `fetch`):
// the exact request body it sent, the status, and each (m)search response's error reason.
const exchanges = [];
const realFetch = globalThis.fetch;

function parseBody(body) {
  if (typeof body !== 'string') return body ?? null;
  const text = body.trim();
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    // _msearch: newline-delimited header/body pairs
    return text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line));
  }
}

function errorOf(response) {
  if (!response || typeof response !== 'object' || !response.error) return null;
  const root = response.error.root_cause?.[0] ?? {};
  return {
    type: response.error.type ?? root.type ?? null,
    reason: response.error.reason ?? root.reason ?? null,
  };
}

function summarise(response) {
  if (!response || typeof response !== 'object') return response;
  if (response.error) return { status: response.status ?? null, error: errorOf(response) };
  const out = {};
  if (response.hits) {
    out.total = response.hits.total;
    out.hit_ids = (response.hits.hits ?? []).map((h) => h._id);
    out.highlighted = (response.hits.hits ?? []).filter((h) => h.highlight).length;
  }
  if (response.aggregations) out.aggregation_keys = Object.keys(response.aggregations);
  if (response.suggest) out.suggest_keys = Object.keys(response.suggest);
  if (response.status !== undefined) out.status = response.status;
  return out;
}

globalThis.fetch = async (input, init = {}) => {
  const url = typeof input === 'string' ? input : input.url;
  const entry = {
    method: init.method ?? 'GET',
    path: new URL(url).pathname,
    body: parseBody(init.body),
  };
  exchanges.push(entry);
  const response = await realFetch(input, init);
  entry.status = response.status;
  const text = await response.clone().text();
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (Array.isArray(parsed?.responses)) {
    entry.responses = parsed.responses.map(summarise);
  } else {
    entry.response = summarise(parsed);
  }
  return response;
};

/** Everything recorded since the last call, then forgets it. */
export function takeExchanges() {
  return exchanges.splice(0, exchanges.length);
}

/** Did every exchange (and every msearch item) answer 200? */
export function allOk(list) {
  return list.every(
    (e) =>
      e.status === 200 &&
      (e.responses ?? []).every((r) => r.error === undefined && (r.status ?? 200) === 200),
  );
}
