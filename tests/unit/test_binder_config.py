"""binder/ is consistent and complete: what mybinder.org (repo2docker) needs to run notebooks/ with nothing else.

Checks the files only (no image is built): every dependency Juno's pyproject declares is pinned exactly in
binder/requirements.txt at a version its specifier allows, constraints.txt pins versions pyproject allows
and binder installs, torch is the CPU-only wheel at constraints.txt's version from PyTorch's CPU index,
runtime.txt names a Python the package supports, postBuild is an executable bash script that stops at the
first failure, and the Binder links in README.md and docs/notebooks.md lead to
notebooks that exist and run on Binder's only kernel (python3).
"""
import json
import os
import re
import stat
import subprocess

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ModuleNotFoundError:  # packaging comes with pip otherwise
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINDER = os.path.join(ROOT, "binder")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# What the notebooks import besides Juno's own dependencies.
NOTEBOOK_DEPS = ["ipykernel", "ipywidgets", "jupyterlab", "numpy", "pyarrow", "cloudpickle", "pyzmq", "psutil",
                 "torch"]
# Files that would make repo2docker ignore requirements.txt or pick another environment.
CONFLICTING = ["environment.yml", "Pipfile", "Pipfile.lock", "install.R", "apt.txt", "Dockerfile", "Project.toml"]


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _requirements():
    """(options, local paths, {canonical name: (Requirement, line)}) of binder/requirements.txt."""
    options, local, pins = [], [], {}
    for raw in _read("binder", "requirements.txt").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
        elif line.startswith(".") or line.startswith("/"):
            local.append(line)
        else:
            req = Requirement(line)
            name = canonicalize_name(req.name)
            assert name not in pins, f"{req.name} is listed twice in binder/requirements.txt"
            pins[name] = (req, line)
    return options, local, pins


def _pinned_version(req):
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
        f"binder/requirements.txt: {req} is not an exact pin (name==version)")
    return Version(specs[0].version)


def test_binder_has_the_files_repo2docker_reads_and_nothing_that_overrides_them():
    for name in ("runtime.txt", "requirements.txt", "postBuild"):
        assert os.path.isfile(os.path.join(BINDER, name)), f"binder/{name} is missing"
    for name in CONFLICTING:
        assert not os.path.exists(os.path.join(BINDER, name)), f"binder/{name} would replace requirements.txt"
    start = os.path.join(BINDER, "start")
    if os.path.exists(start):  # optional; when present it must hand over to the command it is given
        assert os.access(start, os.X_OK) and 'exec "$@"' in _read("binder", "start")


def test_requirements_install_juno_from_the_repo_and_pin_everything_exactly():
    options, local, pins = _requirements()
    assert local == ["."], f"binder/requirements.txt must install Juno from the repo root ('.'), has {local}"
    assert options == [f"--extra-index-url {CPU_INDEX}"], (
        f"the only pip option must be the CPU index as an extra index (PyPI stays the main one), got {options}")
    for req, line in pins.values():
        assert not req.marker and not req.url and not req.extras, f"keep pins plain: {line}"
        _pinned_version(req)
    missing = [n for n in NOTEBOOK_DEPS if canonicalize_name(n) not in pins]
    assert not missing, f"binder/requirements.txt lacks what the notebooks need: {missing}"


def test_every_pyproject_requirement_is_pinned_at_a_version_pyproject_allows():
    project = _pyproject()["project"]
    _, _, pins = _requirements()
    core = [Requirement(r) for r in project["dependencies"]]
    assert core, "pyproject.toml declares no runtime dependencies?"
    for req in core:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (a runtime dependency of Juno) is not pinned in binder/requirements.txt"
    # Every pin, wherever pyproject names that package (core or an extra), satisfies its specifier there.
    declared = core + [Requirement(r) for extra in project.get("optional-dependencies", {}).values() for r in extra]
    for req in declared:
        name = canonicalize_name(req.name)
        if name in pins:
            version = _pinned_version(pins[name][0])
            assert req.specifier.contains(version, prereleases=True), (
                f"binder pins {pins[name][1]} but pyproject.toml requires {req}")


def _constraints():
    return [Requirement(line) for line in _read("constraints.txt").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_constraints_pin_versions_pyproject_allows_and_binder_installs():
    project = _pyproject()["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for extra in project.get("optional-dependencies", {}).values() for r in extra]
    _, _, pins = _requirements()
    for pin in _constraints():
        name = canonicalize_name(pin.name)
        version = _pinned_version(pin)
        ranges = [r for r in declared if canonicalize_name(r.name) == name]
        assert ranges, f"constraints.txt pins {pin}, which pyproject.toml does not declare"
        for req in ranges:
            assert req.specifier.contains(version, prereleases=True), (
                f"constraints.txt pins {pin} but pyproject.toml requires {req}")
        assert name in pins and _pinned_version(pins[name][0]).public == str(version), (
            f"constraints.txt pins {pin}; binder/requirements.txt must pin the same version")


def test_torch_is_the_cpu_wheel_at_the_constraints_version():
    _, _, pins = _requirements()
    version = _pinned_version(pins["torch"][0])
    assert version.local == "cpu", f"torch must be the CPU-only build (+cpu), binder pins {pins['torch'][1]}"
    torch = [r for r in _constraints() if canonicalize_name(r.name) == "torch"]
    assert len(torch) == 1, "constraints.txt pins torch once"
    assert version.public == str(_pinned_version(torch[0])), (
        f"binder's torch {version} is not constraints.txt's {torch[0]}")


def test_runtime_names_a_python_the_package_supports():
    text = _read("binder", "runtime.txt").strip()
    m = re.fullmatch(r"python-(\d+)\.(\d+)", text)
    assert m, f"binder/runtime.txt must be 'python-X.Y' (repo2docker's form), is {text!r}"
    python = Version(f"{m.group(1)}.{m.group(2)}")
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert requires.contains(python), f"runtime.txt asks for Python {python}, pyproject requires {requires}"
    target = _pyproject()["tool"]["ruff"]["target-version"]  # "py310": the oldest Python the code is written for
    assert python >= Version(f"{target[2]}.{target[3:]}"), f"runtime.txt {python} is older than ruff's {target}"


def test_postbuild_is_an_executable_bash_script_that_stops_at_the_first_failure():
    path = os.path.join(BINDER, "postBuild")
    assert os.stat(path).st_mode & stat.S_IXUSR, "binder/postBuild must be executable (chmod +x)"
    lines = _read("binder", "postBuild").splitlines()
    assert lines[0] in ("#!/bin/bash", "#!/usr/bin/env bash"), f"postBuild needs a bash shebang, has {lines[0]!r}"
    commands = [ln.strip() for ln in lines[1:] if ln.strip() and not ln.strip().startswith("#")]
    assert commands and re.fullmatch(r"set -(e|eu|eux|euo pipefail|euxo pipefail|e -o pipefail)", commands[0]), (
        f"postBuild's first command must be `set -e` (or -euo pipefail), is {commands[:1]}")
    syntax = subprocess.run(["bash", "-n", path], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    # No JupyterLab extension of Juno's own exists yet: nothing to install or build for it.
    text = "\n".join(commands)
    assert "jupyter lab build" not in text and "labextension install" not in text


def _binder_links(text):
    return re.findall(r"https://mybinder\.org/v2/gh/[^\s)\]>\"'`]+", text)


def _linked_paths(links):
    """Repository paths the Binder links open (urlpath=lab/tree/PATH)."""
    paths = []
    for link in links:
        m = re.search(r"[?&]urlpath=(?:lab/tree|tree)/([^&#\s]+)", link)
        assert m, f"Binder link {link} does not open a path in the repository (urlpath=lab/tree/...)"
        paths.append(m.group(1).replace("%2F", "/").rstrip("/"))
    return paths


def test_binder_links_open_notebooks_that_exist():
    readme_links = _binder_links(_read("README.md"))
    assert readme_links, "README.md has no Binder launch link"
    assert any(p == "notebooks" for p in _linked_paths(readme_links)), (
        "README.md's Binder link should open the notebooks folder (urlpath=lab/tree/notebooks)")
    docs = _read("docs", "notebooks.md")
    assert re.search(r"^## Binder\s*$", docs, re.M), "docs/notebooks.md has no '## Binder' section"
    section = docs[re.search(r"^## Binder\s*$", docs, re.M).start():]
    following = re.search(r"^## ", section[3:], re.M)  # up to the next top-level section, if any
    section = section[:following.start() + 3] if following else section
    links = readme_links + _binder_links(section)
    for path in _linked_paths(links):
        assert os.path.exists(os.path.join(ROOT, path)), f"a Binder link opens {path}, which does not exist"
    # Notebooks the Binder section names by path exist too.
    for name in re.findall(r"notebooks/[\w.-]+\.ipynb", section):
        assert os.path.isfile(os.path.join(ROOT, name)), f"docs/notebooks.md's Binder section names {name}: missing"


def test_every_notebook_runs_on_binders_python3_kernel():
    folder = os.path.join(ROOT, "notebooks")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".ipynb")) if os.path.isdir(folder) else []
    assert names, "notebooks/ has no notebooks for the Binder link to open"
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            nb = json.load(f)
        assert nb.get("nbformat") == 4, f"{name}: nbformat {nb.get('nbformat')}"
        kernel = nb.get("metadata", {}).get("kernelspec", {}).get("name", "python3")
        assert kernel == "python3", f"{name} asks for kernel {kernel!r}; Binder's image has only 'python3'"
