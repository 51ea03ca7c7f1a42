"""The services' container images (services/<name>/Dockerfile), checked statically: Docker cannot
run on the build machines. hadolint runs on every Dockerfile in test_static_checks.py; these are
the rules it does not know, for each service image, plus what each service needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
# service folder -> the command its image runs
SERVICES = {"ingestor": '["lakehouse-ingest", "serve"]', "bridge": '["lakehouse-bridge", "serve"]'}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def of(service: str, name: str) -> list[str]:
    return [args for kind, args in instructions(REPO / "services" / service / "Dockerfile") if kind == name]


CASES = [pytest.param(name, id=name) for name in SERVICES]


@pytest.mark.parametrize("service", CASES)
def test_the_base_image_is_python_311_slim_pinned_by_tag(service: str) -> None:
    (base,) = of(service, "FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", base), base


@pytest.mark.parametrize("service", CASES)
def test_it_runs_as_a_non_root_user(service: str) -> None:
    users = of(service, "USER")
    assert users, "no USER instruction: the container would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


@pytest.mark.parametrize("service", CASES)
def test_it_installs_the_packages_with_the_repository_constraints(service: str) -> None:
    runs = " ".join(of(service, "RUN"))
    assert "--constraint requirements/constraints.txt" in runs
    assert "./services/common" in runs and f"./services/{service}" in runs


@pytest.mark.parametrize("service", CASES)
def test_the_command_is_serve(service: str) -> None:
    assert of(service, "CMD")[-1] == SERVICES[service]


@pytest.mark.parametrize("service", CASES)
def test_the_build_context_is_limited_to_what_the_image_needs(service: str) -> None:
    ignore = REPO / "services" / service / "Dockerfile.dockerignore"
    rules = [line for line in ignore.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    assert rules[0] == "**", "exclude everything first, then re-include"
    for source in [args.split()[-2] for args in of(service, "COPY")]:
        assert any(rule.startswith(f"!{source}") for rule in rules), f"{source} is copied but not in the context"


def test_the_bridge_serves_on_every_interface_with_its_state_on_a_volume() -> None:
    env = " ".join(of("bridge", "ENV"))
    assert "LAKEHOUSE_BRIDGE_HOST=0.0.0.0" in env
    state = re.search(r"LAKEHOUSE_BRIDGE_STATE_PATH=(\S+)", env)
    assert state is not None
    assert str(Path(state.group(1)).parent) in " ".join(of("bridge", "VOLUME"))
    assert of("bridge", "EXPOSE") == ["8090"]
