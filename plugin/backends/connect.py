"""Building a cluster backend from settings, with an install hint when its client is missing."""

from __future__ import annotations

from shoprank.errors import ConfigError
from shoprank.plugin.backends.protocol import Backend
from shoprank.settings import Settings


def cluster_backend(settings: Settings) -> Backend:
    """The Elasticsearch or OpenSearch backend at `SHOPRANK_BACKEND_URL` (no request sent)."""
    url = settings.backend_url
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"SHOPRANK_BACKEND_URL must be an http(s) URL, got {url!r} (e.g. http://localhost:9200)"
        )
    if settings.backend == "elasticsearch":
        try:
            from .elasticsearch import ElasticsearchBackend
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                f"SHOPRANK_BACKEND=elasticsearch needs the `elasticsearch` client ({exc}); "
                "install it with: pip install 'shoprank[elasticsearch]'"
            ) from None
        return ElasticsearchBackend.connect(
            url,
            api_key=settings.backend_api_key,
            username=settings.backend_username,
            password=settings.backend_password,
            ca_certs=settings.backend_ca_certs,
            verify_certs=settings.backend_verify_certs,
            timeout_s=settings.backend_timeout_s,
            vector_index_type=settings.es_vector_index_type,
        )
    try:
        from .opensearch import OpenSearchBackend
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            f"SHOPRANK_BACKEND=opensearch needs the `opensearch-py` client ({exc}); "
            "install it with: pip install 'shoprank[opensearch]'"
        ) from None
    if settings.backend_api_key:
        raise ConfigError(
            "SHOPRANK_BACKEND_API_KEY is an Elasticsearch option; OpenSearch uses "
            "SHOPRANK_BACKEND_USERNAME / SHOPRANK_BACKEND_PASSWORD"
        )
    return OpenSearchBackend.connect(
        url,
        username=settings.backend_username,
        password=settings.backend_password,
        ca_certs=settings.backend_ca_certs,
        verify_certs=settings.backend_verify_certs,
        timeout_s=settings.backend_timeout_s,
        vector_engine=settings.vector_engine,
    )
