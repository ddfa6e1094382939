"""Repository conventions: packaging in step, thin notebooks, no shell=True, no secrets in notebooks."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _names(lines: list[str]) -> set[str]:
    """Package names from requirements lines or environment.yml dependency lines."""
    out = set()
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if line.startswith("- "):
            line = line[2:].strip()
        if not line or line.startswith("-") or line.endswith(":") or ":" in line.split()[0]:
            continue  # options (-e .), section keys (pip:, dependencies:), name:/channels:
        if line in ("pip", "conda-forge") or line.startswith("python="):
            continue
        out.add(re.split(r"[<>=!~\s\[]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return out


def test_environment_yml_and_requirements_list_the_same_packages() -> None:
    req = _names((ROOT / "requirements.txt").read_text().splitlines())
    env = _names((ROOT / "environment.yml").read_text().splitlines())
    assert req == env, f"only in requirements.txt: {req - env}; only in environment.yml: {env - req}"


TEST_TOOLS = {"pytest", "pytest-timeout", "nbval", "hypothesis", "ziglang", "import-linter", "grimp", "ruff", "mypy"}


def test_runtime_install_carries_no_test_tools_and_ci_installs_them_apart() -> None:
    """requirements.txt is what a user installs (the README's one line); requirements-dev.txt the tests' tools."""
    req = _names((ROOT / "requirements.txt").read_text().splitlines())
    dev = _names((ROOT / "requirements-dev.txt").read_text().splitlines())
    assert not req & TEST_TOOLS, f"test tools in the runtime install: {req & TEST_TOOLS}"
    assert TEST_TOOLS <= dev, f"missing from requirements-dev.txt: {TEST_TOOLS - dev}"
    assert not req & dev, f"listed twice: {req & dev}"
    assert "-e ." in (ROOT / "requirements.txt").read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("pip install -r requirements.txt") < ci.index("pip install -r requirements-dev.txt") < \
        ci.index("python -m pytest")


def test_pyproject_runtime_dependencies_are_in_requirements() -> None:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    req = _names((ROOT / "requirements.txt").read_text().splitlines())
    missing = {re.split(r"[<>=!~\[]", d)[0].lower() for d in deps} - req
    assert not missing, f"runtime dependencies missing from requirements.txt: {missing}"


def test_no_shell_true_anywhere_in_the_package() -> None:
    offenders = []
    for py in (ROOT / "zcnb").rglob("*.py"):
        tree = ast.parse(py.read_text(), filename=str(py))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                    offenders.append(f"{py.relative_to(ROOT)}:{node.value.lineno}")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("system", "popen") and \
                    getattr(getattr(node.func, "value", None), "id", "") == "os":
                offenders.append(f"{py.relative_to(ROOT)}:{node.lineno} os.{node.func.attr}")
    assert not offenders, offenders


def test_no_input_prompts_or_sys_exit_in_the_package() -> None:
    offenders = []
    for py in (ROOT / "zcnb").rglob("*.py"):
        if py.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id == "input":
                    offenders.append(f"{py.name}:{node.lineno} input()")
                if isinstance(f, ast.Attribute) and f.attr == "exit" and getattr(f.value, "id", "") == "sys":
                    if py.name not in ("server.py",):  # the simulator's own process entry point may exit
                        offenders.append(f"{py.name}:{node.lineno} sys.exit")
    assert not offenders, offenders


def test_all_six_stage_notebooks_exist() -> None:
    names = [p.name for p in NOTEBOOKS]
    for prefix in ("01_", "02_", "03_", "04_", "05_", "06_"):
        assert any(n.startswith(prefix) for n in names), f"missing notebook {prefix}*: have {names}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_thin_and_parameterised(nb_path: Path) -> None:
    nb = json.loads(nb_path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    assert code.index(params[0]) == 1, "parameters cell comes right after the imports cell"
    for line in "".join(params[0]["source"]).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"^(\w+): (\w+(?:\[[\w, ]+\])?) = (.+?)(\s+# .+)?$", line)
        assert m, f"parameter line is not `name: type = literal  # help`: {line!r}"
        ast.literal_eval(m.group(3).strip())
        assert line.count("=") == 1, f"papermill --help-notebook cannot parse a second '=': {line!r}"
        assert m.group(4), f"parameter {m.group(1)} has no help comment"
        assert not re.search(r"token|secret|password", m.group(1)) or m.group(1).endswith("_env"), line
    for cell in code:
        src = "".join(cell["source"])
        tree = ast.parse(src)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.While,
                                         ast.Try, ast.Lambda, ast.ListComp, ast.DictComp, ast.SetComp)), \
                f"{type(node).__name__} in a notebook cell:\n{src}"
        lines = [ln for ln in src.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if cell is not params[0]:
            assert len(lines) <= 6, f"cell has {len(lines)} lines (keep <= 5 zcnb calls):\n{src}"
        assert not cell.get("outputs"), "commit notebooks without outputs"


def test_readme_commands_are_the_ones_ci_runs() -> None:
    """The README's install and test commands are exactly what .ci/run executes; `zcnb` is on PATH."""
    import shutil
    import subprocess

    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    block = re.search(r"## Set up\s+```bash\n(.*?)```", readme, re.DOTALL)
    assert block, "README needs a '## Set up' bash block"
    install, main_job = [ln.strip() for ln in block.group(1).strip().splitlines()]
    assert main_job == "zcnb demo"
    assert install in ci
    test_cmd = re.search(r"## Tests\s+```bash\n(.*?)\n```", readme, re.DOTALL)
    assert test_cmd and test_cmd.group(1).strip() in ci
    exe = shutil.which("zcnb")
    assert exe, "the zcnb console script is not on PATH after the install command"
    out = subprocess.run([exe, "demo", "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "simulated gateway" in out.stdout
