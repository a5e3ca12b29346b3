// Stock Searchkit 4 + InstantSearch.js (headless, connectors only) driven in Node against a
// search URL: `node searchkit.mjs <url> <index> [outdir]`. Prints one JSON object, per
// scenario: the requests Searchkit sent (exact bodies), their statuses, and what the
// InstantSearch widgets would render (hits with highlights, facet values and counts).
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { allOk, takeExchanges } from './capture.mjs';
import Searchkit from 'searchkit';
import Client from '@searchkit/instantsearch-client';

const require = createRequire(import.meta.url);
const instantsearch = require('instantsearch.js').default;
const connectors = require('instantsearch.js/cjs/connectors/index.js');

const [url, index = 'icecat', outdir] = process.argv.slice(2);
if (!url) {
  console.error('usage: node searchkit.mjs <url> <index> [outdir]');
  process.exit(2);
}

// The configuration from Searchkit's getting-started guide, for the Icecat catalog.
export const searchSettings = {
  search_attributes: [{ field: 'title', weight: 3 }, 'description', 'brand.text'],
  result_attributes: ['title', 'description', 'brand', 'price'],
  highlight_attributes: ['title'],
  snippet_attributes: ['description'],
  facet_attributes: [
    { attribute: 'brand', field: 'brand', type: 'string' },
    { attribute: 'price', field: 'price', type: 'numeric' },
  ],
  sorting: {
    default: { field: '_score', order: 'desc' },
    _price_asc: { field: 'price', order: 'asc' },
    _price_desc: { field: 'price', order: 'desc' },
    _brand_asc: [
      { field: 'brand', order: 'asc' },
      { field: '_id', order: 'asc' },
    ],
  },
};

// InstantSearch's facet search does not catch a failed request: record it instead of dying.
let lastError = null;
process.on('unhandledRejection', (err) => {
  lastError = String(err?.stack ?? err);
});

async function until(done, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

function makeClient() {
  const sk = new Searchkit({ connection: { host: url }, search_settings: searchSettings });
  return Client(sk);
}

// Run one InstantSearch page: the widgets a shop page has, started from `uiState`; `act`
// may refine further (facet search, page change). Resolves with what the widgets render.
function runPage(uiState, act) {
  return new Promise((resolve, reject) => {
    const view = {};
    let brandList = null;
    const search = instantsearch({
      indexName: index,
      searchClient: makeClient(),
      initialUiState: { [index]: uiState },
      future: { preserveSharedStateOnUnmount: true },
    });
    const hits = connectors.connectHits((opts) => {
      if (!opts.results) return;
      view.nbHits = opts.results.nbHits;
      view.page = opts.results.page;
      view.nbPages = opts.results.nbPages;
      view.hits = opts.hits.map((h) => ({
        id: h.objectID,
        title: h.title,
        brand: h.brand,
        price: h.price,
        title_highlight: h._highlightResult?.title?.value ?? null,
        description_snippet: h._snippetResult?.description?.value ?? null,
      }));
    });
    const brand = connectors.connectRefinementList((opts) => {
      brandList = opts;
      view.brand = opts.items.map((i) => ({ value: i.value, count: i.count, refined: i.isRefined }));
      if (opts.isFromSearch) view.brand_facet_search = view.brand;
    });
    const price = connectors.connectRange((opts) => {
      view.price_range = opts.range;
      view.price_refinement = opts.start;
    });
    const sort = connectors.connectSortBy((opts) => {
      view.sort = opts.currentRefinement;
    });
    const box = connectors.connectSearchBox((opts) => {
      view.query = opts.query;
    });
    const paging = connectors.connectPagination((opts) => {
      view.current_page = opts.currentRefinement;
    });
    search.addWidgets([
      box({}),
      hits({}),
      brand({ attribute: 'brand', limit: 10, operator: 'or' }),
      price({ attribute: 'price' }),
      sort({
        items: [
          { label: 'Relevance', value: index },
          { label: 'Price: low to high', value: `${index}_price_asc` },
          { label: 'Price: high to low', value: `${index}_price_desc` },
          { label: 'Brand A-Z', value: `${index}_brand_asc` },
        ],
      }),
      paging({}),
    ]);
    let acted = false;
    const finish = () => {
      search.dispose();
      resolve(view);
    };
    search.on('error', (err) => {
      view.error = String(err?.error ?? err);
    });
    search.on('render', () => {
      if (search.status !== 'idle' || view.hits === undefined) return;
      if (act && !acted) {
        acted = true;
        Promise.resolve(act({ search, brandList, view }))
          .then(() => setTimeout(finish, 50))
          .catch(reject);
        return;
      }
      if (!act) finish();
    });
    search.start();
  });
}

export const scenarios = {
  // The landing page: empty query, facets, first page.
  initial: () => runPage({}),
  brand_filter: () => runPage({ refinementList: { brand: ['HP'] } }),
  query: () => runPage({ query: 'epson' }),
  query_brand_filter: () => runPage({ query: 'epson', refinementList: { brand: ['Epson'] } }),
  query_page_2: () => runPage({ query: 'epson', page: 2 }),
  sort_brand_az: () => runPage({ sortBy: `${index}_brand_asc` }),
  sort_price_asc: () => runPage({ query: 'epson', sortBy: `${index}_price_asc` }),
  price_range: () => runPage({ query: 'epson', range: { price: '10:100' } }),
  prefix_query: () => runPage({ query: 'sams' }),
  brand_facet_search: () =>
    runPage({}, async ({ brandList, view }) => {
      brandList.searchForItems('sam');
      await until(() => view.brand_facet_search !== undefined || lastError !== null);
      if (lastError !== null) view.error = lastError;
    }),
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
    view = { error: String(err) };
  }
  const requests = takeExchanges();
  out[name] = { ok: allOk(requests), requests, view };
  if (outdir) {
    mkdirSync(outdir, { recursive: true });
    writeFileSync(`${outdir}/searchkit-${name}.json`, JSON.stringify(out[name], null, 2));
  }
}
console.log(JSON.stringify(out));
