// Stock Elastic Search UI (its headless SearchDriver) with the Elasticsearch connector,
// driven in Node against a search URL: `node searchui.mjs <url> <index> [outdir]`. Prints
// one JSON object, per scenario: the exact request bodies the connector sent, their
// statuses, and what a Search UI page would render (results with snippets, facets).
import { mkdirSync, writeFileSync } from 'node:fs';
import { allOk, takeExchanges } from './capture.mjs';
import { SearchDriver } from '@elastic/search-ui';
import ElasticsearchAPIConnector from '@elastic/search-ui-elasticsearch-connector';

const [url, index = 'icecat', outdir] = process.argv.slice(2);
if (!url) {
  console.error('usage: node searchui.mjs <url> <index> [outdir]');
  process.exit(2);
}

// The connector's autocomplete does not catch a failed request: record it instead of dying.
let lastError = null;
process.on('unhandledRejection', (err) => {
  lastError = String(err?.stack ?? err);
});

export const priceRanges = [
  { from: 0, to: 10, name: 'Under 10' },
  { from: 10, to: 50, name: '10 to 50' },
  { from: 50, to: 200, name: '50 to 200' },
  { from: 200, name: '200 and above' },
];

// The configuration from Search UI's Elasticsearch connector guide, for the Icecat catalog.
const searchQuery = {
  search_fields: { title: { weight: 3 }, description: {}, 'brand.text': {} },
  result_fields: {
    title: { snippet: { size: 100, fallback: true } },
    description: { snippet: { size: 100, fallback: true } },
    brand: { raw: {} },
    price: { raw: {} },
  },
  disjunctiveFacets: ['brand', 'price'],
  facets: {
    brand: { type: 'value', size: 10 },
    price: { type: 'range', ranges: priceRanges },
  },
};

const autocompleteQuery = {
  results: {
    resultsPerPage: 5,
    search_fields: { title: { weight: 3 }, 'brand.text': {} },
    result_fields: { title: { snippet: { size: 100, fallback: true } }, brand: { raw: {} } },
  },
  suggestions: { types: { documents: { fields: ['title'] } }, size: 4 },
};

function makeDriver(initialState) {
  return new SearchDriver({
    apiConnector: new ElasticsearchAPIConnector({ host: url, index }),
    searchQuery,
    autocompleteQuery,
    initialState,
    trackUrlState: false,
    alwaysSearchOnInitialLoad: true,
    hasA11yNotifications: false,
  });
}

function render(state) {
  const facet = (name) =>
    (state.facets?.[name]?.[0]?.data ?? []).map((d) => ({
      value: typeof d.value === 'object' ? d.value.name : d.value,
      count: d.count,
    }));
  return {
    error: state.error || null,
    totalResults: state.totalResults,
    current: state.current,
    totalPages: state.totalPages,
    results: (state.results ?? []).map((r) => ({
      id: r.id?.raw,
      title: r.title?.raw ?? null,
      brand: r.brand?.raw ?? null,
      price: r.price?.raw ?? null,
      title_snippet: r.title?.snippet ?? null,
      description_snippet: r.description?.snippet ?? null,
    })),
    brand: facet('brand'),
    price: facet('price'),
    autocompletedResults: (state.autocompletedResults ?? []).map((r) => ({
      id: r.id?.raw,
      title: r.title?.raw ?? null,
      title_snippet: r.title?.snippet ?? null,
    })),
    autocompletedSuggestions: state.autocompletedSuggestions ?? {},
  };
}

// Wait for the driver to settle: a search it started has finished (loading went on, then
// off), or, for autocomplete, `predicate` holds.
function settle(driver, predicate = null) {
  return new Promise((resolve) => {
    let sawLoading = false;
    const deadline = setTimeout(() => resolve(driver.getState()), 20000);
    const check = (state) => {
      sawLoading = sawLoading || state.isLoading;
      const done = predicate ? predicate(state) : (sawLoading && !state.isLoading) || !!state.error;
      if (done || lastError !== null) {
        clearTimeout(deadline);
        driver.unsubscribeToStateChanges(check);
        setTimeout(() => resolve(driver.getState()), 20);
      }
    };
    driver.subscribeToStateChanges(check);
    check(driver.getState());
  });
}

async function page(initialState) {
  const driver = makeDriver({ resultsPerPage: 20, ...initialState });
  const state = await settle(driver);
  driver.tearDown();
  return render(state);
}

const byField = (field, values) => ({ field, values, type: 'any' });

export const scenarios = {
  initial: () => page({}),
  brand_filter: () => page({ filters: [byField('brand', ['HP'])] }),
  query: () => page({ searchTerm: 'epson' }),
  query_brand_filter: () => page({ searchTerm: 'epson', filters: [byField('brand', ['Epson'])] }),
  query_price_filter: () =>
    page({ searchTerm: 'epson', filters: [byField('price', [priceRanges[1]])] }),
  query_page_2: () => page({ searchTerm: 'epson', current: 2 }),
  sort_brand_az: () => page({ sortList: [{ field: 'brand', direction: 'asc' }] }),
  sort_price_desc: () =>
    page({ searchTerm: 'epson', sortList: [{ field: 'price', direction: 'desc' }] }),
  autocomplete: async () => {
    const driver = makeDriver({ resultsPerPage: 20 });
    await settle(driver);
    takeExchanges(); // the landing page's search belongs to `initial`
    driver.getActions().setSearchTerm('sam', {
      autocompleteResults: true,
      autocompleteSuggestions: true,
      refresh: false,
    });
    const state = await settle(
      driver,
      (s) =>
        (s.autocompletedResults?.length ?? 0) > 0 ||
        Object.keys(s.autocompletedSuggestions ?? {}).length > 0 ||
        !!s.error ||
        lastError !== null,
    );
    if (lastError !== null) state.error = lastError;
    await new Promise((r) => setTimeout(r, 500));
    driver.tearDown();
    return render({ ...driver.getState(), ...state });
  },
};

const only = process.env.SCENARIOS ? process.env.SCENARIOS.split(',') : Object.keys(scenarios);
const out = {};
for (const name of only) {
  takeExchanges();
  lastError = null;
  let view;
  try {
    view = await scenarios[name]();
  } catch (err) {
    view = { error: String(err?.stack ?? err) };
  }
  const requests = takeExchanges();
  out[name] = { ok: allOk(requests), requests, view };
  if (outdir) {
    mkdirSync(outdir, { recursive: true });
    writeFileSync(`${outdir}/searchui-${name}.json`, JSON.stringify(out[name], null, 2));
  }
}
console.log(JSON.stringify(out));
