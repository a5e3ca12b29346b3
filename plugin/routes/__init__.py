"""The drop-in endpoint's routers, one per surface: `search` (the ES search API),
`cluster` (`GET /`, health, document GETs) and `products`; `common` holds the response
type, the dependencies and the thread-pool runner they share."""
