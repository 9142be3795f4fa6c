"""What a ``%%remote`` cell reads from the notebook and what it assigns (pure: no kernel, no cluster).

The cell is parsed with ``ast`` and its scopes read with ``symtable``:

* ``reads``: the global names the cell (or a function, class or comprehension in it) uses;
  those the notebook namespace holds are shipped with the cell.
* ``assigns``: the names the cell binds at top level (assignments, imports, ``def``,
  ``class``, ``for`` targets, ``with ... as``, ``global`` names assigned in functions);
  they come back into the notebook namespace.
* ``last_expr``: whether the last statement is an expression, whose value the cell shows.
"""

from __future__ import annotations

import ast
import builtins
import symtable
from dataclasses import dataclass

CELL_FILENAME = "<remote-cell>"
_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class CellAnalysis:
    reads: frozenset[str]
    assigns: tuple[str, ...]
    last_expr: bool

    def shipped(self, namespace: dict) -> dict:
        """The names this cell reads that ``namespace`` holds. Builtins are not shipped (the
        remote side has them) unless the notebook rebound the name."""
        return {name: namespace[name] for name in sorted(self.reads)
                if name in namespace and not (name in _BUILTINS and namespace[name] is getattr(builtins, name))}


def analyse_cell(code: str) -> CellAnalysis:
    """Analyse a cell's source; a SyntaxError is raised as Python would raise it."""
    tree = ast.parse(code, CELL_FILENAME, "exec")
    table = symtable.symtable(code, CELL_FILENAME, "exec")
    reads: set[str] = set()
    assigns: dict[str, None] = {}  # ordered set
    for sym in table.get_symbols():
        name = sym.get_name()
        if sym.is_referenced():
            reads.add(name)
        if sym.is_assigned() or sym.is_imported() or _is_def(sym):
            assigns.setdefault(name, None)
    for child in table.get_children():
        _collect_nested(child, reads, assigns)
    reads -= {"__builtins__", "__name__"}
    last_expr = bool(tree.body) and isinstance(tree.body[-1], ast.Expr)
    return CellAnalysis(frozenset(reads), tuple(a for a in assigns if not a.startswith(".")), last_expr)


def _is_def(sym: symtable.Symbol) -> bool:
    try:
        return sym.is_namespace()
    except Exception:  # noqa: BLE001
        return False


def _collect_nested(table: symtable.SymbolTable, reads: set, assigns: dict) -> None:
    """Names a nested scope (function, class, comprehension) takes from the cell's globals."""
    is_function = table.get_type() == "function"
    for sym in table.get_symbols():
        if sym.is_global():
            if sym.is_referenced():
                reads.add(sym.get_name())
            if sym.is_declared_global() and sym.is_assigned() and is_function:
                assigns.setdefault(sym.get_name(), None)
        elif not is_function and sym.is_referenced() and not sym.is_local() and not sym.is_free():
            # class bodies look up unbound names in the globals
            reads.add(sym.get_name())
    for child in table.get_children():
        _collect_nested(child, reads, assigns)


def split_last_expression(code: str) -> tuple[ast.Module, ast.Expression | None]:
    """The cell as a module without its last expression statement, and that expression (or None)."""
    tree = ast.parse(code, CELL_FILENAME, "exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
        return tree, last
    return tree, None
