"""The Dockerfile and .dockerignore, without a Docker engine (none runs here).

Checked: the stages, the slim base, the non-root numeric USER, the one
ENTRYPOINT; that the build context .dockerignore leaves holds everything the
Dockerfile copies; and that a wheel built from exactly that context carries
both entry points (the step `pip install .` of the build stage).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import yaml

from support.chart_tools import CHART, ROOT, run

Instruction = tuple[str, str]


def parse_dockerfile(path: Path) -> list[Instruction]:
    """(INSTRUCTION, arguments) with line continuations joined, comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, f"{path} ends in a line continuation"
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def test_multi_stage_slim_non_root_single_entrypoint() -> None:
    instructions = parse_dockerfile(ROOT / "Dockerfile")
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for word, rest in instructions
            if word == "ARG" and "=" in rest}
    build, runtime = stages(instructions)
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    # The runtime copies the built virtualenv and nothing from the source tree.
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/queueworker /opt/queueworker"]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users, "the runtime stage must set USER"
    uid = users[-1].split(":")[0]
    # Numeric, so that Kubernetes' runAsNonRoot can verify it; the chart uses it.
    assert uid.isdigit()
    assert int(uid) != 0
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    last_user = max(i for i, (word, _) in enumerate(runtime) if word == "USER")
    assert all(word != "RUN" for word, _ in runtime[last_user:]), "RUN after USER"
    entrypoints = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["queueworker"]]
    assert any("queueworker --help" in rest for word, rest in build if word == "RUN")
    # pip's settings for a private index or a proxy's CA (scripts/build-image.sh passes the
    # host's) are build-stage ARGs without a default: never part of the runtime image.
    assert {rest for word, rest in build if word == "ARG"} == {"PIP_INDEX_URL", "PIP_CERT"}
    assert all(word != "ARG" for word, _ in runtime)
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "PATH=/opt/queueworker/bin:$PATH" in env
    assert "PYTHONUNBUFFERED=1" in env


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: anchored at the context root, `**`
    any number of folders, `*` and `?` within one path element (Go's filepath.Match)."""
    out = ""
    i = 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "$")


def _context_files() -> list[str]:
    """The files `docker build .` sends, per .dockerignore (the last matching line
    wins; a pattern that matches a folder matches everything in it)."""
    rules = [(line.startswith("!"), _docker_pattern(line.lstrip("!")))
             for line in (line.strip() for line in
                          (ROOT / ".dockerignore").read_text().splitlines())
             if line and not line.startswith("#")]
    tracked = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"]).stdout
    kept = []
    for name in tracked.splitlines():
        parts = name.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        included = True
        for negate, regex in rules:
            if any(regex.match(p) for p in prefixes):
                included = negate
        if included:
            kept.append(name)
    return kept


def test_dockerignore_keeps_only_the_sources() -> None:
    files = _context_files()
    assert "pyproject.toml" in files
    assert "README.md" in files
    assert any(f.startswith("operator/queueworker/") for f in files)
    assert any(f.startswith("worker/queueworker/") for f in files)
    for f in files:
        assert not f.startswith((".git/", ".venv/", ".tools/", "tests/", "charts/")), f
        assert "__pycache__" not in f


def test_wheel_from_the_build_context_has_both_entry_points(tmp_path: Path) -> None:
    # Recreate the build stage's /src from the files the Dockerfile copies out
    # of the context, and build the wheel the way `pip install .` does.
    src = tmp_path / "src"
    for name in _context_files():
        if name.split("/")[0] in {"pyproject.toml", "README.md", "operator", "worker"}:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--wheel-dir", str(tmp_path / "dist"), str(src)], timeout=180)
    (wheel,) = (tmp_path / "dist").glob("queueworker-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names
                            if n.endswith("entry_points.txt"))
    assert "queueworker = queueworker.cli:entrypoint" in entry_points
    assert {"queueworker/cli.py", "queueworker/operator/__init__.py",
            "queueworker/worker/__init__.py"} <= names
    # Both subcommands the image is run with resolve to modules in the wheel.
    from queueworker.cli import COMMANDS

    for command in ("operator", "worker"):
        module = COMMANDS[command][0].replace(".", "/") + ".py"
        if (ROOT / "operator" / module).exists() or (ROOT / "worker" / module).exists():
            assert module in names, module


def test_worker_image_example_builds_on_the_image() -> None:
    instructions = parse_dockerfile(ROOT / "examples" / "Dockerfile.worker")
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for word, rest in instructions
            if word == "ARG" and "=" in rest}
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert args["QUEUEWORKER_IMAGE"] == f"{values['image']['repository']}:{chart['appVersion']}"
    assert ("FROM", "${QUEUEWORKER_IMAGE}") in instructions
    users = [rest for word, rest in instructions if word == "USER"]
    assert users[-1].split(":")[0] == "10001"
    cmd = json.loads(next(rest for word, rest in instructions if word == "CMD"))
    assert cmd[:2] == ["queueworker", "worker"]
    # Matches examples/native-worker.yaml, whose args start with the command.
    native = yaml.safe_load((ROOT / "examples" / "native-worker.yaml").read_text())
    container = native["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == cmd[:2]
