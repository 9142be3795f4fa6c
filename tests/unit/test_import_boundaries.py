"""The notebook layer and the libraries use only Juno's public API (issue 12's import boundary).

``juno.widgets``, ``juno.kernel_ext`` and the libraries (``libs/*``) are clients of the core like
any user program: they may import their own package, the public modules below and each other's
public names, never a runtime internal (``juno.owner``, ``juno.api``, ``juno.store`` ...) nor an
underscore name. The check reads each module's source (ast): imports, ``importlib.import_module``
with a constant name, and attribute chains on imported juno names (``juno.api._state``).

``jupyter_extension/`` is held to a wider line: it is the dashboard's server side, running in the
Jupyter server as a second host of ``juno.dashboard``'s HTTP API (same handlers) and finding
clusters where ``juno.cluster`` records them, so those two roles are its own; it must still
never reach the owner side, comm, the GCS, node or store.
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import os
import re
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What "public" means: these modules and everything under them (docs/core.md, "The public API",
# lists the same; test_docs_list_the_public_modules keeps the two equal). The libraries' own
# packages (pyproject's package-dir entries under libs/) are public too.
PUBLIC_MODULES = (
    "juno",  # the top level only: juno.remote, get, put, wait, init, ObjectRef, ...
    "juno.actor",
    "juno.cluster_utils",
    "juno.exceptions",
    "juno.job_config",
    "juno.kernel_ext",
    "juno.object_ref",
    "juno.remote_function",
    "juno.runtime_context",
    "juno.util",
    "juno.widgets",
)
# Packages whose submodules are public too (the others are public as one module).
PUBLIC_PACKAGES = ("juno.kernel_ext", "juno.util", "juno.widgets")

# Internal roles a client folder may use besides the public API, and why (see the docstring).
EXTRA_ALLOWED = {"juno.jupyter_extension": ("juno.dashboard", "juno.cluster")}


def client_packages() -> dict[str, str]:
    """import name -> folder, for every part of the distribution that is a client of the core."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        package_dir = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: folder for name, folder in package_dir.items()
            if name != "juno" and (folder in ("widgets", "kernel_ext", "jupyter_extension")
                                   or folder.startswith("libs/"))}


def library_packages() -> tuple[str, ...]:
    return tuple(name for name, folder in client_packages().items() if folder.startswith("libs/"))


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@functools.lru_cache(maxsize=None)
def _module_of(path: str) -> str:
    """The longest prefix of a dotted path that is a module (``juno.util.state.list_tasks`` ->
    ``juno.util.state``)."""
    parts = path.split(".")
    for n in range(len(parts), 1, -1):
        try:
            if importlib.util.find_spec(".".join(parts[:n])) is not None:
                return ".".join(parts[:n])
        except (ImportError, ValueError):
            pass
    return parts[0]


class BoundaryChecker:
    """Finds the juno imports of one client module that cross its boundary."""

    def __init__(self, package: str, extra_allowed: tuple[str, ...] = (), public_packages: tuple[str, ...] = ()):
        self.package = package  # the client's own import package: anything in it is allowed
        self.allowed = extra_allowed
        self.public_packages = public_packages  # the libraries

    def module_ok(self, module: str) -> bool:
        """Whether importing ``module`` (a juno module) is within bounds."""
        if _under(module, self.package) or any(_under(module, p) for p in self.allowed):
            return True
        if any(part.startswith("_") and not part.startswith("__") for part in module.split(".")):
            return False
        if module in PUBLIC_MODULES:
            return True
        return any(_under(module, p) for p in PUBLIC_PACKAGES + self.public_packages)

    def name_ok(self, path: str, name: str) -> bool:
        """Whether ``path.name`` (``path``: a juno module, or a name in one) is within bounds."""
        if _under(path, self.package) or any(_under(path, p) for p in self.allowed):
            return True
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            return False
        return self.module_ok(_module_of(f"{path}.{name}"))

    def check(self, source: str, filename: str, module_name: str) -> list[str]:
        """Every crossing in ``source`` as ``file:line: what``."""
        tree = ast.parse(source, filename)
        problems: list[str] = []
        bound: dict[str, str] = {}  # a local name -> the juno module or attribute path it stands for

        def bad(node: ast.AST, what: str) -> None:
            problems.append(f"{filename}:{node.lineno}: {what}")

        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != "juno":
                        continue
                    if not self.module_ok(alias.name):
                        bad(node, f"import {alias.name}")
                    bound[alias.asname or "juno"] = alias.name if alias.asname else "juno"
            elif isinstance(node, ast.ImportFrom):
                module = self._absolute(node, module_name)
                if module is None or module.split(".")[0] != "juno":
                    continue
                if not self.module_ok(module):
                    bad(node, f"from {module} import {', '.join(a.name for a in node.names)}")
                    continue
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    if not self.name_ok(module, alias.name):
                        bad(node, f"from {module} import {alias.name}")
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
            elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args \
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                target = node.args[0].value
                if target.split(".")[0] == "juno" and not self.module_ok(target):
                    bad(node, f"import_module({target!r})")
        inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and id(node) not in inner:  # a whole chain, once
                chain = _attribute_chain(node)
                if chain is None or chain[0] not in bound:
                    continue
                path = bound[chain[0]]
                for name in chain[1:]:
                    if not self.name_ok(path, name):
                        bad(node, f"{'.'.join(chain)} ({path}.{name})")
                        break
                    path = f"{path}.{name}"
        return problems

    def _absolute(self, node: ast.ImportFrom, module_name: str) -> str | None:
        if not node.level:
            return node.module
        parts = module_name.split(".")[:-node.level]  # a package's __init__ is named <package>.__init__
        if not parts:
            return None
        return ".".join(parts + ([node.module] if node.module else []))


def _is_dynamic_import(func: ast.AST) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or \
        (isinstance(func, ast.Name) and func.id in ("import_module", "__import__"))


def _attribute_chain(node: ast.Attribute) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None when the chain does not start at a plain name."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id] + names[::-1]


def client_modules():
    """(package, file, module name) for every Python module of every client folder."""
    for package, folder in sorted(client_packages().items()):
        base = os.path.join(ROOT, folder)
        if not os.path.isdir(base):
            continue  # a library not written yet
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d not in ("node_modules", "__pycache__", "lib", "labextension")]
            for fn in sorted(filenames):
                if not fn.endswith(".py"):
                    continue
                path = os.path.join(dirpath, fn)
                rel = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
                yield package, path, f"{package}.{rel}"  # a package's own file: <package>.__init__


def check_file(package: str, path: str, module_name: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        source = f.read()
    checker = BoundaryChecker(package, EXTRA_ALLOWED.get(package, ()), library_packages())
    return checker.check(source, os.path.relpath(path, ROOT), module_name)


# ------------------------------------------------------------------------------ the boundary
def test_clients_import_only_the_public_api():
    modules = list(client_modules())
    assert {p for p, _, _ in modules} >= {"juno.widgets", "juno.kernel_ext", "juno.jupyter_extension"}
    assert len(modules) > 15  # the walk found the code (nothing passes for want of files)
    problems = [p for package, path, name in modules for p in check_file(package, path, name)]
    assert not problems, "imports past the public API (add what is needed to juno.util.notebook " \
                         "or another public module instead):\n" + "\n".join(problems)


def test_docs_list_the_public_modules():
    with open(os.path.join(ROOT, "docs", "core.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## The public API", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\* `(juno[\w.]*)`", section, flags=re.M))
    assert listed == set(PUBLIC_MODULES), "docs/core.md's public API list and PUBLIC_MODULES differ"


# ------------------------------------------------------------------------------ the checker itself
def _check(source: str, package: str = "juno.widgets", module: str = "juno.widgets.demo") -> list[str]:
    return BoundaryChecker(package).check(source, "demo.py", module)


@pytest.mark.parametrize("source", [
    "from juno.owner.core_worker import global_worker",
    "import juno.owner.core_worker",
    "import juno.store.format as f",
    "from juno.api import _state",
    "from juno.api import get",  # juno.api is internal: juno.get is the public name
    "from juno import api",
    "from juno import owner",
    "from juno import _make_remote",
    "from juno.util.notebook import _value_failed",
    "from ..owner import core_worker",  # relative, out of the package
    "from .. import api",
    "import juno\njuno.api._state.get('context')",
    "import juno\njuno._make_remote(f, {})",
    "from juno.util import notebook\nnotebook._value_failed(v)",
    "import importlib\nimportlib.import_module('juno.owner.core_worker')",
    "def f():\n    from juno.observability.cluster_status import node_usage\n    return node_usage",
    "from juno.dashboard.http_api import ApiError",  # allowed to the Jupyter server extension only
])
def test_checker_flags_a_planted_violation(source):
    problems = _check(source)
    assert len(problems) == 1, problems
    assert problems[0].startswith("demo.py:")


@pytest.mark.parametrize("source", [
    "import juno\njuno.get(juno.put(1)); juno.__version__",
    "from juno import ObjectRef, exceptions",
    "from juno.exceptions import RayTaskError",
    "from juno.util import notebook\nnotebook.on_completed",
    "from juno.util.state import list_tasks",
    "from juno.util.scheduling_strategies import NodeAffinitySchedulingStrategy",
    "from juno.widgets import formatting as fmt\nfmt._private_is_ours",
    "from .live import LiveView",
    "from . import formatting",
    "import juno.widgets.live",
    "from juno.kernel_ext import output",  # another client's public module
    "import numpy\nnumpy._core",
])
def test_checker_lets_the_public_api_through(source):
    assert _check(source) == []


def test_the_jupyter_extension_may_use_the_dashboard_and_cluster_roles_only():
    checker = BoundaryChecker("juno.jupyter_extension", EXTRA_ALLOWED["juno.jupyter_extension"])
    assert checker.check("from juno.dashboard.http_api import ApiError\nfrom juno.cluster import local_cluster",
                         "x.py", "juno.jupyter_extension.x") == []
    assert len(checker.check("from juno.owner import core_worker", "x.py", "juno.jupyter_extension.x")) == 1


def test_a_library_may_use_the_other_libraries():
    checker = BoundaryChecker("juno.train", public_packages=("juno.air", "juno.train"))
    assert checker.check("from juno.air import session\nimport juno.widgets", "x.py", "juno.train.x") == []
    assert len(checker.check("from juno.owner import task_spec", "x.py", "juno.train.x")) == 1
