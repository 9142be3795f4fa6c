"""``filter(expr="...")``: a Python expression over column names, run as an Arrow compute filter.

The expression is parsed (never evaluated as Python): column names, literals, comparisons,
``and``/``or``/``not``, arithmetic, ``in`` with a literal list, and ``is None``/``is not None``.
Anything else is a ValueError that says what is allowed.
"""
from __future__ import annotations

import ast
import operator
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.Mod: lambda a, b: pc.subtract(a, pc.multiply(pc.floor(pc.divide(a, b)), b))}
ALLOWED = ("column names, numbers, strings, True/False/None, comparisons (== != < <= > >=), and/or/not, "
           "+ - * / %, `in [..]` and `is (not) None`")


def compile_filter(expr: str) -> Callable[[pa.Table], pa.Table]:
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError(f"filter(expr=...) must be a non-empty string, got {expr!r}")
    try:
        tree = ast.parse(expr, mode="eval").body
    except SyntaxError as e:
        raise ValueError(f"filter(expr={expr!r}) is not a valid expression: {e.msg}") from None
    predicate = _convert(tree, expr)

    def apply(table: pa.Table) -> pa.Table:
        if table.num_rows == 0:
            return table
        missing = sorted(_names(tree) - set(table.column_names))
        if missing:
            raise KeyError(f"filter(expr={expr!r}): no column {missing}; the columns are {table.column_names}")
        return table.filter(predicate)

    return apply


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id not in ("True", "False", "None")}


def _convert(node: ast.AST, expr: str):
    if isinstance(node, ast.Name):
        return pc.field(node.id)
    if isinstance(node, ast.Constant):
        return pc.scalar(node.value)
    if isinstance(node, ast.BoolOp):
        parts = [_convert(v, expr) for v in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        out = parts[0]
        for part in parts[1:]:
            out = combine(out, part)
        return out
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return ~_convert(node.operand, expr)
        if isinstance(node.op, ast.USub):
            return pc.negate(_convert(node.operand, expr))
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        return _ARITH[type(node.op)](_convert(node.left, expr), _convert(node.right, expr))
    if isinstance(node, ast.Compare):
        out, left = None, node.left
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.Is, ast.IsNot)) and isinstance(right, ast.Constant) and right.value is None:
                term = pc.is_null(_convert(left, expr))
                term = ~term if isinstance(op, ast.IsNot) else term
            elif isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.List, ast.Tuple, ast.Set)):
                values = [ast.literal_eval(e) for e in right.elts]
                term = pc.is_in(_convert(left, expr), value_set=pa.array(values))
                term = ~term if isinstance(op, ast.NotIn) else term
            elif type(op) in _COMPARE:
                term = _COMPARE[type(op)](_convert(left, expr), _convert(right, expr))
            else:
                raise ValueError(f"filter(expr={expr!r}): {type(op).__name__} is not supported; use {ALLOWED}")
            out = term if out is None else out & term
            left = right
        return out
    raise ValueError(f"filter(expr={expr!r}): {ast.unparse(node)!r} is not supported; use {ALLOWED}")
