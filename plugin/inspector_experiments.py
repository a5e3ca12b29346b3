"""The inspector's experiment pages (`/_shoprank/inspect/experiments`). Being built."""

from __future__ import annotations

from fastapi import APIRouter

from shoprank.plugin.search import SearchService


def make_experiments_inspector_router(service: SearchService) -> APIRouter:
    """The experiment pages and their JSON API for `service`."""
    return APIRouter(prefix="/_shoprank/inspect")
