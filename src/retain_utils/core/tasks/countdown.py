"""Countdown: combine the given numbers with + - * / to reach a target; the answer goes in \\boxed{}.

Problems are generated from a seed (or read from the Countdown-Tasks dataset schema: ``nums``, ``target``).
Answers are checked by a whitelist walk over Python's ``ast`` parse tree with exact fractions; nothing
is ever passed to ``eval``. The expert response comes from a brute-force solver, written out step by step in varied words.
"""

from __future__ import annotations

import ast
import itertools
import numbers
import random
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .base import (Example, Task, check_common, check_int, check_n, check_split, read_rows, row_error, sample_items,
                   split_of, split_seed)

NAME = "countdown"
OPS = "+-*/"
MAX_EXPR_CHARS = 200
MAX_SOLVER_NUMBERS = 6  # the exhaustive solver's limit: file rows with more numbers are refused
PROBE_TRIES = 5_000  # draws tried before settings are declared to admit no problem

PROMPT = (
    "Numbers: {nums}. Target: {target}. Use each number exactly once with {ops} to reach the target. "
    "Write the final equation inside \\boxed{{}}."
)
_OP_WORDS = {"+": "+", "-": "-", "*": "*", "/": "/"}


def _ops_text(ops: str) -> str:
    names = [_OP_WORDS[o] for o in ops]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


# ---------------------------------------------------------------------------------------------- safe evaluation

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


def safe_eval(expr: str) -> tuple[Fraction, list[int]]:
    """Value (exact) and the integer literals of an arithmetic expression with + - * / and parentheses.

    Raises ValueError for anything else (names, calls, powers, unary signs, floats, division by zero).
    """
    if len(expr) > MAX_EXPR_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, MemoryError, RecursionError):  # deep nesting is a parser error, not a crash
        raise ValueError(f"not an arithmetic expression: {expr!r}") from None
    literals: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = walk(node.left), walk(node.right)
            op = _BINOPS[type(node.op)]
            if op == "+":
                return left + right
            if op == "-":
                return left - right
            if op == "*":
                return left * right
            if right == 0:
                raise ValueError("division by zero")
            return left / right
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
            return Fraction(node.value)
        raise ValueError(f"disallowed element {type(node).__name__} in {expr!r}")

    return walk(tree.body), literals


# ---------------------------------------------------------------------------------------------- parse / verify

_BOXED = "\\boxed{"


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (balanced braces), or None."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    i, depth = start + len(_BOXED), 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def normalize_expression(expr: str) -> str:
    """Common spellings to Python operators, surrounding $ or spaces dropped. An equation keeps its sides
    ("3 + 4 = 7"): ``check`` requires every side to agree, so a wrong stated result is a wrong answer."""
    expr = normalize_expression_chars(expr).replace("{", "(").replace("}", ")")
    return expr.strip().strip("$").strip()


_EXPR_CHARS = set("0123456789+-*/() ")


_STATED = re.compile(r"\s*(\d+(?:\.\d+)?)")  # the number an equation states right after its '='


def last_equation(text: str) -> str | None:
    """The last equation 'expression = result' (e.g. '9 + 32 = 41' in '... 9 + 32 = 41.'), with the number it
    states (without one, the expression alone), for ``check`` to compare."""
    text = normalize_expression_chars(text)
    for line in reversed(text.splitlines()):
        parts = line.split("=")
        for i in range(len(parts) - 2, -1, -1):
            lhs = parts[i].rstrip()
            j = len(lhs)
            while j > 0 and lhs[j - 1] in _EXPR_CHARS:
                j -= 1
            expr = lhs[j:].strip().lstrip(")").strip()
            if len(expr) <= MAX_EXPR_CHARS and re.search(r"\d\s*[-+*/][\s(]*\d", expr):
                try:
                    safe_eval(expr)
                except ValueError:
                    continue
                stated = _STATED.match(parts[i + 1])
                return f"{expr} = {stated.group(1)}" if stated else expr
    return None


def normalize_expression_chars(expr: str) -> str:
    """Unicode and LaTeX operator spellings to + - * /."""
    for a, b in (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("×", "*"), ("·", "*"), ("÷", "/"),
                 ("−", "-"), ("\\left", ""), ("\\right", "")):
        expr = expr.replace(a, b)
    return expr


def check(expr: str, nums: list[int], target: int) -> bool:
    """True when ``expr`` uses exactly ``nums`` (each once) and evaluates to ``target``. An equation
    ("9 + 32 = 41") counts when its one side with an operator does so and every other side states the same value:
    "42 + 44 = 96" is wrong even where the target is 86."""
    sides = [side.strip() for side in expr.split("=")]
    with_ops = [side for side in sides if re.search(r"[-+*/]", side)]
    if len(sides) > 1 and (len(with_ops) != 1 or not all(sides)):
        return False
    try:
        value, used = safe_eval(with_ops[0] if with_ops else sides[0])
        stated = [_number(side) for side in sides if side not in with_ops]
    except ValueError:
        return False
    return sorted(used) == sorted(nums) and value == target and all(v == value for v in stated)


def _number(text: str) -> Fraction:
    """A stated result: an integer expression's value, or a decimal ("86.5"); else ValueError."""
    try:
        return safe_eval(text)[0]
    except ValueError:
        if re.fullmatch(r"\d+\.\d+", text):
            return Fraction(text)
        raise


# ---------------------------------------------------------------------------------------------- solver


def solve(nums: list[int], target: int) -> str | None:
    """A fully parenthesised expression over ``nums`` that equals ``target``, or None (exhaustive search).

    Multisets of values already shown to fail are remembered, so 6 numbers without a solution take seconds.
    """
    if len(nums) > MAX_SOLVER_NUMBERS:
        raise ValueError(f"the solver takes at most {MAX_SOLVER_NUMBERS} numbers, got {len(nums)}")
    start = [(Fraction(x), str(x)) for x in nums]
    failed: set[tuple[Fraction, ...]] = set()

    def search(items: list[tuple[Fraction, str]]) -> str | None:
        if len(items) == 1:
            return items[0][1] if items[0][0] == target else None
        key = tuple(sorted(v for v, _ in items))
        if key in failed:
            return None
        found = expand(items)
        if found is None:
            failed.add(key)
        return found

    def expand(items: list[tuple[Fraction, str]]) -> str | None:
        for i, j in itertools.permutations(range(len(items)), 2):
            (a, ea), (b, eb) = items[i], items[j]
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            candidates = [(a + b, f"{ea} + {eb}")] if i < j else []
            candidates += [(a * b, f"{ea} * {eb}")] if i < j else []
            candidates += [(a - b, f"{ea} - {eb}")]
            if b != 0:
                candidates.append((a / b, f"{ea} / {eb}"))
            for value, expr in candidates:
                wrapped = expr if not rest else f"({expr})"
                found = search(rest + [(value, wrapped)])
                if found is not None:
                    return found
        return None

    return search(start)


_OPENERS = ["We need to reach {target} with {nums}.", "Let's combine {nums} to get {target}.",
            "Target {target}, numbers {nums}.", "I'll try to build {target} from {nums}.", ""]
_FIRST = ["First, {s}.", "Start with {s}.", "{S}.", "We can compute {s}."]
_NEXT = ["Then {s}.", "Next, {s}.", "After that, {s}.", "Now {s}."]
_LAST = ["That gives {target}, so the equation is \\boxed{{{expr}}}.", "So the answer is \\boxed{{{expr}}}.",
         "This reaches the target: \\boxed{{{expr}}}", "Putting it together: \\boxed{{{expr}}} = {target}."]


def expert_response(nums: list[int], target: int, expr: str) -> str:
    """A short worked solution in varied words (seeded by the problem), ending in \\boxed{expr}."""
    rng = random.Random(split_seed(0, "expert", NAME, _key(nums, target)))
    steps = []
    tree = ast.parse(expr, mode="eval").body

    def emit(node: ast.AST) -> tuple[Fraction, str]:
        if isinstance(node, ast.Constant):
            return Fraction(node.value), str(node.value)
        (a, left), (b, right) = emit(node.left), emit(node.right)
        op = _BINOPS[type(node.op)]
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else Fraction(0)}[op]
        shown = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
        steps.append(f"{left} {op} {right} = {shown}")
        return value, shown

    emit(tree)
    listed = ", ".join(map(str, nums[:-1])) + " and " + str(nums[-1])
    lines = [rng.choice(_OPENERS).format(target=target, nums=listed)]
    for i, step in enumerate(steps):
        lines.append(rng.choice(_FIRST if i == 0 else _NEXT).format(s=step, S=step))
    lines.append(rng.choice(_LAST).format(target=target, expr=expr))
    return " ".join(line for line in lines if line)


# ---------------------------------------------------------------------------------------------- generation


def random_problem(rng: random.Random, n_numbers: int, low: int, high: int, max_target: int,
                   ops: str, tries: int = PROBE_TRIES) -> tuple[list[int], int, str]:
    """Draw numbers, combine them with a random expression (integer intermediates), keep a target in range.

    Gives up with ValueError after ``tries`` draws, so that settings that admit no problem never hang.
    """
    for _ in range(tries):
        nums = [rng.randint(low, high) for _ in range(n_numbers)]
        items = [(x, str(x)) for x in nums]
        rng.shuffle(items)
        ok = True
        while len(items) > 1:
            i, j = rng.sample(range(len(items)), 2)
            (a, ea), (b, eb) = items[i], items[j]
            op = rng.choice(ops)
            if op == "-" and a < b:
                (a, ea), (b, eb) = (b, eb), (a, ea)
            if op == "/" and (b == 0 or a % b):
                ok = False
                break
            value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if b else 0}[op]
            expr = f"{ea} {op} {eb}"
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            items = rest + [(value, expr if not rest else f"({expr})")]
        target, expr = items[0]
        if ok and 1 <= target <= max_target:
            return nums, target, expr
    raise ValueError(f"no countdown problem with a target in 1..{max_target} found in {tries} draws of "
                     f"{n_numbers} numbers in {low}..{high} with ops {ops!r}; widen low/high, max_target or ops")


@dataclass
class CountdownTask(Task):
    """Countdown problems; difficulty knobs: ``n_numbers``, number range, ``max_target``, ``ops``.

    Defaults (2 numbers in 1..50, all four operations) are calibrated for SmolLM2-135M-Instruct: with 3
    numbers it solves almost nothing, even when sampling; with 2 it is right greedily about 40% of the
    time (mostly when the target is the sum) and has room to learn the rest (notes/calibration.md).

    ``source``: None (generated from the seed) or a path to a file in the Countdown-Tasks schema
    (``nums``: list of ints, ``target``: int); ``"hub"`` loads Jiayi-Pan/Countdown-Tasks-3to4.
    """

    n_numbers: int = 2
    low: int = 1
    high: int = 50
    max_target: int = 100
    ops: str = "+-*/"
    source: str | None = None
    name: str = NAME
    system_prompt: str | None = None
    max_new_tokens: int = 96

    def __post_init__(self):
        check_common(self)
        check_int("n_numbers", self.n_numbers, 2, MAX_SOLVER_NUMBERS)
        check_int("low", self.low, 0)
        check_int("high", self.high, 0)
        check_int("max_target", self.max_target, 1)
        if self.low > self.high:
            raise ValueError(f"need low <= high, got low={self.low}, high={self.high}")
        if not isinstance(self.ops, str) or not self.ops or set(self.ops) - set(OPS):
            raise ValueError(f"ops must be a non-empty string of operators from {OPS!r}, got {self.ops!r}")
        self._rows = self._lines = None
        if self.source is None:  # settings that admit no problem fail here, not in an endless draw
            random_problem(random.Random(0), self.n_numbers, self.low, self.high, self.max_target, self.ops)
        else:
            self._rows, self._lines = load_countdown(self.source, with_lines=True)

    def _example(self, nums: list[int], target: int, expr: str | None) -> Example:
        expr = expr or solve(nums, target)
        if expr is None:
            where = f"{self.source}, line {self._lines[_key(nums, target)]}: " if self._lines else ""
            raise ValueError(f"{where}countdown problem {nums} -> {target} has no solution")
        prompt = PROMPT.format(nums=", ".join(map(str, nums)), target=target, ops=_ops_text(self.ops))
        return Example(NAME, prompt, {"nums": list(nums), "target": target}, expert_response(nums, target, expr))

    def make_examples(self, n: int, seed: int = 0, split: str = "train") -> list[Example]:
        check_n(n)
        check_split(split)
        if self._rows is not None:
            rows = [r for r in self._rows if split_of(_key(*r)) == split]
            return [self._example(nums, target, None)
                    for nums, target in sample_items(rows, n, seed, split, repeat=split == "train")]
        rng = random.Random(split_seed(seed, split, NAME, self.n_numbers, self.low, self.high, self.ops))
        out, seen = [], set()
        for _ in range(200 * max(n, 1)):
            if len(out) == n:
                break
            nums, target, expr = random_problem(rng, self.n_numbers, self.low, self.high, self.max_target, self.ops)
            key = _key(nums, target)
            if split_of(key) != split or (split == "eval" and key in seen):
                continue
            seen.add(key)
            out.append(self._example(nums, target, expr))
        if len(out) < n:
            raise ValueError(f"could only draw {len(out)} distinct {split} countdown problems with these settings")
        return out

    def parse(self, response: str) -> str | None:
        """The last \\boxed{} expression; without a box, the left side of the last 'expression = number'.

        The fallback exists because SmolLM2-135M almost never writes \\boxed{} but often ends with an equation.
        """
        boxed = last_boxed(response)
        if boxed is None:
            return last_equation(response)
        expr = normalize_expression(boxed)
        try:
            for side in expr.split("="):  # an equation's every side is a number or an expression
                _number(side.strip())
        except ValueError:
            return None  # not an arithmetic expression: unparsed, not merely wrong
        return expr

    def verify(self, example: Example, parsed: str) -> bool:
        return check(parsed, example.target["nums"], example.target["target"])

    def lenient_answer(self, example: Example, response: str) -> bool:
        """Lenient rule: any arithmetic expression in the reply, boxed or not, on any side of an '=', that uses
        exactly the given numbers and reaches the target (e.g. "(9 + 32) is 41" or "9 + 32 = 41, so 41")."""
        return any(check(expr, example.target["nums"], example.target["target"]) for expr in expressions(response))


def expressions(text: str) -> list[str]:
    """Candidate expressions: each maximal run of digits, operators, parentheses, spaces and '=' that holds an
    operator, split at '=' into its sides; braces count as parentheses. A run whose sides state different values
    ("42 + 44 = 96") offers none: its stated result is wrong. Runs longer than ``MAX_EXPR_CHARS`` are skipped."""
    text = normalize_expression_chars(text).replace("\\boxed", " ").replace("{", "(").replace("}", ")")
    out, run = [], []
    for ch in text + "\n":
        if ch in _EXPR_CHARS or ch == "=":
            run.append(ch)
            continue
        sides = [side.strip() for side in "".join(run).split("=") if side.strip()]
        run = []
        values = set()
        for side in sides:
            try:
                values.add(safe_eval(side.strip("()").strip() or side)[0])
            except ValueError:
                pass
        if len(values) > 1:
            continue
        for expr in sides:
            if len(expr) <= MAX_EXPR_CHARS and any(op in expr for op in OPS):
                out.append(expr)
                stripped = expr.strip("()").strip()  # "(9 + 32)" from a sentence's own parentheses
                if stripped != expr:
                    out.append(stripped)
    return out


def _key(nums: list[int], target: int) -> str:
    return f"{sorted(nums)}->{target}"


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def load_countdown(source: str | Path, *, with_lines: bool = False):
    """Rows (nums, target) from a Countdown-Tasks file, or the hub dataset when ``source == "hub"``.

    Rows with more numbers than the solver takes (``MAX_SOLVER_NUMBERS``) are refused, naming file and line.
    ``with_lines``: also return {problem key: line number} so a later error can name the line.
    """
    if str(source) == "hub":
        from datasets import load_dataset

        data = load_dataset("Jiayi-Pan/Countdown-Tasks-3to4", split="train")
        records = enumerate(({"nums": list(r["nums"]), "target": r["target"]} for r in data), 1)
    else:
        records = read_rows(source, list_columns=("nums",))
    rows, lines = [], {}
    for lineno, row in records:
        nums, target = row.get("nums"), row.get("target")
        if isinstance(nums, (str, bytes)) or not hasattr(nums, "__len__") or len(nums) < 2 \
                or not all(_is_int(x) and x >= 0 for x in nums):
            raise row_error(source, lineno, f"'nums' must be a list of 2 or more non-negative ints, got {nums!r}")
        if len(nums) > MAX_SOLVER_NUMBERS:
            raise row_error(source, lineno, f"{len(nums)} numbers; the exhaustive solver takes at most "
                                            f"{MAX_SOLVER_NUMBERS}")
        if not _is_int(target):
            raise row_error(source, lineno, f"'target' must be an int, got {target!r}")
        rows.append(([int(x) for x in nums], int(target)))
        lines.setdefault(_key(rows[-1][0], rows[-1][1]), lineno)
    if not rows:
        raise ValueError(f"{source}: no rows")
    return (rows, lines) if with_lines else rows
