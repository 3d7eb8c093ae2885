"""Safe, vectorised expressions of position and time: ``"0.01 * t * sin(pi * y)"``.

A config value may be a formula of the coordinates ``x, y, z`` and the pseudo-time ``t``. It is
parsed once with Python's :mod:`ast` (``mode="eval"``) and checked against a whitelist; nothing
is ever passed to ``eval``/``exec``. Allowed:

* numbers (int or float literals), the constants ``pi`` and ``e``;
* ``+ - * / % **``, unary ``+ -``;
* comparisons ``< <= > >= == !=`` (chains like ``0 < x < 1``), ``and``, ``or``, ``not``
  (true = 1.0, false = 0.0), and the conditional ``a if condition else b`` (each branch is
  evaluated only where it is taken);
* the functions in :data:`FUNCTIONS` (``sin``, ``cos``, ``exp``, ``sqrt``, ``abs``, ``min``,
  ``max``, ...), called with positional arguments.

Any other name, attribute access, subscript, keyword, lambda, string, ... is refused when the
expression is parsed. Evaluation is vectorised: variables are numpy arrays (N,) (``t`` a
scalar) and the result is an array (N,); a division by zero or a value that is not finite
(``sqrt(-1)``, ``exp(1000)``) or larger in magnitude than :data:`MAX_ABS` raises
:class:`ExpressionError` naming what failed. An expression has at most :data:`MAX_LENGTH`
characters and :data:`MAX_NODES` terms.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

VARIABLES = ("x", "y", "z", "t")
CONSTANTS = {"pi": np.float64(np.pi), "e": np.float64(np.e)}


def _min(*args):
    return np.minimum.reduce(np.broadcast_arrays(*args))


def _max(*args):
    return np.maximum.reduce(np.broadcast_arrays(*args))


#: name -> (numpy function, number of arguments; None: one or more).
FUNCTIONS: dict[str, tuple[Callable, int | None]] = {
    "sin": (np.sin, 1), "cos": (np.cos, 1), "tan": (np.tan, 1),
    "asin": (np.arcsin, 1), "acos": (np.arccos, 1), "atan": (np.arctan, 1), "atan2": (np.arctan2, 2),
    "sinh": (np.sinh, 1), "cosh": (np.cosh, 1), "tanh": (np.tanh, 1),
    "exp": (np.exp, 1), "log": (np.log, 1), "sqrt": (np.sqrt, 1), "abs": (np.abs, 1),
    "sign": (np.sign, 1), "floor": (np.floor, 1), "ceil": (np.ceil, 1),
    "min": (_min, None), "max": (_max, None),
}

_BINARY = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Pow: np.power, ast.Mod: np.mod,
}
_COMPARE = {
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
    ast.Eq: np.equal, ast.NotEq: np.not_equal,
}
MAX_LENGTH = 2000
MAX_NODES = 500
#: Largest magnitude of a value (as for every number of a config: :data:`fe2.config.base.MAX_ABS`).
MAX_ABS = 1e15


class ExpressionError(ValueError):
    """An expression that is not allowed, or whose value is not finite where evaluated."""


Env = Mapping[str, "np.ndarray | float"]
Node = Callable[[Env], np.ndarray]


def _restrict(env: Env, mask: np.ndarray) -> dict:
    """The variables at the points where ``mask`` holds (scalars unchanged)."""
    return {k: (v[mask] if np.ndim(v) else v) for k, v in env.items()}


def _compile(node: ast.AST) -> Node:
    """A vectorised evaluator of a whitelisted AST node (raises ExpressionError otherwise)."""
    if isinstance(node, ast.Expression):
        return _compile(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"{node.value!r} is not a number")
        value = np.float64(node.value)
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in CONSTANTS:
            value = CONSTANTS[name]
            return lambda env: value
        if name in VARIABLES:
            return lambda env: env[name]
        known = ", ".join([*VARIABLES, *CONSTANTS])
        raise ExpressionError(f"unknown name {name!r} (variables and constants: {known})")
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda env: -operand(env)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return lambda env: np.logical_not(operand(env)).astype(float)
    if isinstance(node, ast.BinOp):
        left, right = _compile(node.left), _compile(node.right)
        if isinstance(node.op, ast.Div):
            return lambda env: _divide(left(env), right(env))
        if type(node.op) in _BINARY:
            op = _BINARY[type(node.op)]
            return lambda env: op(left(env), right(env))
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        return lambda env: combine.reduce(np.broadcast_arrays(*(p(env) for p in parts))).astype(float)
    if isinstance(node, ast.Compare):
        if any(type(op) not in _COMPARE for op in node.ops):
            raise ExpressionError("only the comparisons < <= > >= == != are allowed")
        terms = [_compile(node.left), *(_compile(c) for c in node.comparators)]
        ops = [_COMPARE[type(op)] for op in node.ops]

        def compare(env):
            values = [term(env) for term in terms]
            result = np.bool_(True)
            for op, a, b in zip(ops, values[:-1], values[1:]):
                result = np.logical_and(result, op(a, b))
            return np.asarray(result, dtype=float)

        return compare
    if isinstance(node, ast.IfExp):
        test, body, orelse = _compile(node.test), _compile(node.body), _compile(node.orelse)

        def conditional(env):
            mask = np.asarray(test(env)) != 0
            n = max((np.size(v) for v in env.values() if np.ndim(v)), default=1)
            mask = np.broadcast_to(mask, (n,)) if np.ndim(mask) or n > 1 else mask
            if not np.ndim(mask):
                return body(env) if mask else orelse(env)
            out = np.empty(n)
            if mask.any():
                out[mask] = body(_restrict(env, mask))
            if not mask.all():
                out[~mask] = orelse(_restrict(env, ~mask))
            return out

        return conditional
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):
            raise ExpressionError(f"attribute access ({ast.unparse(node.func)}) is not allowed")
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(f"unknown function {what!r} (allowed: {', '.join(FUNCTIONS)})")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError(f"{node.func.id}(): positional arguments only")
        function, arity = FUNCTIONS[node.func.id]
        if (arity is None and not node.args) or (arity is not None and len(node.args) != arity):
            wanted = "one or more" if arity is None else str(arity)
            raise ExpressionError(f"{node.func.id}() takes {wanted} argument(s), got {len(node.args)}")
        args = [_compile(a) for a in node.args]
        return lambda env: function(*(a(env) for a in args))
    if isinstance(node, ast.Attribute):
        raise ExpressionError(f"attribute access ({ast.unparse(node)}) is not allowed")
    raise ExpressionError(f"{type(node).__name__} ({ast.unparse(node)}) is not allowed")


def _divide(numerator, denominator):
    if np.any(np.asarray(denominator) == 0):
        raise ExpressionError("division by zero")
    return numerator / denominator


@dataclass(frozen=True)
class Expression:
    """A parsed expression of x, y, z, t (see the module docstring).

    Attributes:
        text: the source text.
        names: the variables it uses (a subset of x, y, z, t).
    """

    text: str
    names: frozenset[str]
    _evaluate: Node

    @property
    def uses_time(self) -> bool:
        return "t" in self.names

    @property
    def uses_position(self) -> bool:
        return bool(self.names & {"x", "y", "z"})

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Values at the points ``x`` (3, N) at time ``t``: (N,).

        Raises:
            ExpressionError: a division by zero or a value that is not finite.
        """
        x = np.asarray(x, dtype=float)
        env = {"x": x[0], "y": x[1], "z": x[2], "t": float(t)}
        try:
            with np.errstate(all="ignore"):
                values = np.broadcast_to(np.asarray(self._evaluate(env), dtype=float), x.shape[1:])
        except (OverflowError, FloatingPointError, ValueError) as exc:
            if isinstance(exc, ExpressionError):
                raise
            raise ExpressionError(f"{self.text!r} cannot be evaluated ({exc})") from None
        bad = ~np.isfinite(values)
        if bad.any():
            raise ExpressionError(f"{self.text!r} is not finite at {self._where(env, bad)}")
        huge = np.abs(values) > MAX_ABS
        if huge.any():
            raise ExpressionError(f"{self.text!r} = {values[huge][0]:g} at {self._where(env, huge)}: "
                                  f"magnitude must be <= {MAX_ABS:g}")
        return np.array(values)

    def _where(self, env: Env, mask: np.ndarray) -> str:
        """'x = .., y = .., t = ..' of the first point where ``mask`` holds."""
        i = int(np.flatnonzero(mask)[0])
        where = ", ".join(f"{v} = {env[v][i]:g}" for v in "xyz" if v in self.names)
        return f"{where}, t = {env['t']:g}" if where else f"t = {env['t']:g}"


def parse_expression(text: str) -> Expression:
    """Parse and check ``text``; raises :class:`ExpressionError` with a one-line reason."""
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {text!r} ({exc.msg})") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"expression with more than {MAX_NODES} terms")
    evaluate = _compile(tree)
    names = frozenset(n.id for n in nodes if isinstance(n, ast.Name) and n.id in VARIABLES)
    return Expression(text=text, names=names, _evaluate=evaluate)
