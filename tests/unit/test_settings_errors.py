"""Settings come from SHOPRANK_* variables and are validated; errors map to ES bodies."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shoprank.errors import (
    BackendUnavailableError,
    BadRequestError,
    IndexNotFoundError,
    UnsupportedQueryError,
    es_error_body,
    http_status,
)
from shoprank.settings import Settings, get_settings


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHOPRANK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHOPRANK_FUSION", "linear")
    monkeypatch.setenv("SHOPRANK_WINDOW_SIZE", "50")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.embedded_dir == tmp_path / "embedded"
    assert settings.fusion == "linear"
    assert settings.window_size == 50


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPRANK_FUSION", "average")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "fusion" in str(info.value)


def test_get_settings_is_cached_and_lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    monkeypatch.setenv("SHOPRANK_DEFAULT_MODE", "lexical")
    assert get_settings() is get_settings()
    assert get_settings().default_mode == "lexical"
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("exc", "status", "es_type"),
    [
        (BadRequestError("bad"), 400, "parsing_exception"),
        (UnsupportedQueryError("nope"), 400, "unsupported_query_exception"),
        (IndexNotFoundError("shop"), 404, "index_not_found_exception"),
        (BackendUnavailableError("down"), 503, "unavailable_shards_exception"),
        (RuntimeError("secret detail"), 500, "exception"),
    ],
)
def test_errors_map_to_status_and_es_body(exc: Exception, status: int, es_type: str) -> None:
    assert http_status(exc) == status
    body = es_error_body(exc)
    assert body["status"] == status
    assert body["error"]["type"] == es_type
    assert body["error"]["root_cause"][0]["type"] == es_type
    # Unexpected errors do not leak their message to clients.
    assert "secret detail" not in str(body)
