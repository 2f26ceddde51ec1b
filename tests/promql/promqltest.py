"""Reader and runner for Prometheus' PromQL test files (the `.test` format).

A file is a sequence of commands: `load <interval>` with series lines, `clear`, and
`eval instant at <t> <query>` or `eval range from <t0> to <t1> step <s> <query>`
followed by `expect ...` lines and the expected series. Every case runs against a
fresh in-memory MetricStore holding what the `load` commands since the last `clear`
wrote, and is compared with the Engine's result.

Cases are skipped, with the reason, when they need native histograms (a `{{...}}`
literal in the expectation, or a query that selects a series loaded with histogram
samples) or syntax that promql-parser does not accept.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import promql_parser

from gosight.model import Labels, Matcher, SampleBatch, make_labels
from gosight.store.metrics_duckdb import MetricStore
from gosight.store.promql import Engine, QueryError
from gosight.store.promql import nodes
from gosight.store.promql.errors import BadQueryError
from gosight.store.promql.parse import parse_query

EPSILON = 1e-6
_MIN_NORMAL = 2.2250738585072014e-308
_FLOAT = r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[Ii]nf|NaN|nan)"
_EXPANSION = re.compile(rf"^(?P<start>{_FLOAT})(?:(?P<sign>[+-])(?P<step>{_FLOAT}))?x(?P<times>\d+)$")

NATIVE_HISTOGRAMS = "native histograms"
PARSER_SYNTAX = "syntax promql-parser lacks"


@dataclass
class Case:
    """One `eval` command with its expectations."""

    line: int
    query: str
    start_ms: int
    end_ms: int
    step_ms: int  # 0 for an instant query
    fail: bool = False
    fail_message: str | None = None
    fail_regex: str | None = None
    ordered: bool = False
    warn: bool | None = None  # True: warnings expected; False: none allowed; None: not checked
    warn_message: str | None = None
    warn_regex: str | None = None
    info: bool | None = None
    info_message: str | None = None
    range_vector: tuple[int, int, int] | None = None  # expect range vector from/to/step, in ms
    expected_string: str | None = None
    expected_scalar: float | None = None
    expected_series: list[tuple[Labels, list[float | None]]] = field(default_factory=list)
    has_histogram_literal: bool = False


@dataclass
class Outcome:
    case: Case
    status: str  # "passed", "failed" or "skipped"
    reason: str = ""


@dataclass
class FileReport:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def evaluated(self) -> int:
        return len(self.outcomes)

    def skip_reasons(self) -> Counter:
        return Counter(outcome.reason for outcome in self.outcomes if outcome.status == "skipped")


# Parsing values and durations.

def parse_duration_ms(text: str) -> int:
    text = text.strip()
    try:
        return int(round(float(text) * 1000))
    except ValueError:
        pass
    if re.fullmatch(r"(0[a-z]+)+", text):
        return 0
    delta = promql_parser.parse_duration(text)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def expand_values(tokens: list[str]) -> tuple[list[float | None], bool]:
    """Expand series values; None is a missing sample. Return (values, saw a histogram)."""
    values: list[float | None] = []
    histogram = False
    for token in tokens:
        if token.startswith("{{"):
            histogram = True
            repeat = re.search(r"}}x(\d+)$", token)
            values.extend([None] * ((int(repeat.group(1)) + 1) if repeat else 1))
            continue
        if token == "_":
            values.append(None)
            continue
        blanks = re.fullmatch(r"_x(\d+)", token)
        if blanks:
            values.extend([None] * int(blanks.group(1)))
            continue
        if token == "stale":
            values.append(STALE)
            continue
        try:
            values.append(float(token))
            continue
        except ValueError:
            pass
        match = _EXPANSION.match(token)
        if match is None:
            raise ValueError(f"invalid series value {token!r}")
        start = float(match.group("start"))
        step = float(match.group("step") or 0.0)
        if match.group("sign") == "-":
            step = -step
        for index in range(int(match.group("times")) + 1):
            values.append(start + step * index)
    return values, histogram


def _value_tokens(text: str) -> list[str]:
    """Split series values on spaces, keeping each `{{...}}` histogram (with any +{{...}}xN) whole."""
    tokens: list[str] = []
    index = 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        if text.startswith("{{", index):
            end = index
            depth = 0
            while end < len(text):
                if text.startswith("{{", end):
                    depth += 1
                    end += 2
                    continue
                if text.startswith("}}", end):
                    depth -= 1
                    end += 2
                    if depth == 0 and not text.startswith(("+{{", "-{{"), end):
                        break
                    continue
                end += 1
            repeat = re.match(r"x\d+", text[end:])
            if repeat:
                end += repeat.end()
            tokens.append(text[index:end])
            index = end
            continue
        end = index
        while end < len(text) and not text[end].isspace():
            end += 1
        tokens.append(text[index:end])
        index = end
    return tokens


def parse_series_line(line: str) -> tuple[Labels, list[float | None], bool]:
    """Parse `metric{a="b"} values...`; return (labels, values, has histogram values)."""
    labels, rest = _parse_series_labels(line)
    values, histogram = expand_values(_value_tokens(rest))
    return labels, values, histogram


def _parse_series_labels(line: str) -> tuple[Labels, str]:
    pairs: dict[str, str] = {}
    index = 0
    name_match = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
    if name_match and not line.startswith("{"):
        pairs["__name__"] = name_match.group(0)
        index = name_match.end()
    if index < len(line) and line[index] == "{":
        index += 1
        while True:
            while index < len(line) and line[index] in " ,":
                index += 1
            if line[index] == "}":
                index += 1
                break
            if line[index] == '"':
                name, index = _read_quoted(line, index)
            else:
                match = re.match(r"[a-zA-Z_][a-zA-Z0-9_]*", line[index:])
                name = match.group(0)
                index += match.end()
            while line[index] == " ":
                index += 1
            if line[index] == "=":
                index += 1
                while line[index] == " ":
                    index += 1
                value, index = _read_quoted(line, index)
                pairs[name] = value
            else:
                # A bare quoted name inside braces is the metric name: {"foo"}.
                pairs["__name__"] = name
    return make_labels(pairs), line[index:]


def _read_quoted(text: str, index: int) -> tuple[str, int]:
    quote = text[index]
    end = index + 1
    while text[end] != quote:
        end += 2 if text[end] == "\\" else 1
    raw = text[index + 1:end]
    return _unescape(raw), end + 1


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    return raw.encode("latin-1", "backslashreplace").decode("unicode_escape")


STALE = float(np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0])


# Reading a file.

@dataclass
class Load:
    line: int
    interval_ms: int
    series: list[tuple[Labels, list[float | None]]]
    histogram_series: list[Labels]


def read_commands(text: str) -> list[object]:
    """Read a test file into Load, Case and "clear" commands in order."""
    lines = [line.strip() for line in text.split("\n")]
    lines = ["" if line.startswith("#") else line for line in lines]
    commands: list[object] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line:
            index += 1
            continue
        if line == "clear":
            commands.append("clear")
            index += 1
            continue
        if line.startswith(("load ", "load_with_nhcb ")):
            index = _read_load(lines, index, commands)
            continue
        if line.startswith(("eval ", "eval_fail ", "eval_ordered ", "eval_warn ", "eval_info ")):
            index = _read_eval(lines, index, commands)
            continue
        raise ValueError(f"line {index + 1}: unknown command {line!r}")
    return commands


def _block(lines: list[str], index: int) -> tuple[list[tuple[int, str]], int]:
    body = []
    index += 1
    while index < len(lines) and lines[index]:
        body.append((index + 1, lines[index]))
        index += 1
    return body, index


def _read_load(lines: list[str], index: int, commands: list[object]) -> int:
    keyword, interval = lines[index].split(None, 1)
    body, next_index = _block(lines, index)
    series: dict[Labels, list[float | None]] = {}
    histograms: list[Labels] = []
    for _, line in body:
        labels, values, histogram = parse_series_line(line)
        series[labels] = values
        if histogram:
            histograms.append(labels)
        if keyword == "load_with_nhcb" and dict(labels).get("__name__", "").endswith("_bucket"):
            # The loader also derives a native histogram with custom buckets from these series.
            pairs = {name: value for name, value in labels if name != "le"}
            pairs["__name__"] = pairs["__name__"][: -len("_bucket")]
            histograms.append(make_labels(pairs))
    commands.append(Load(index + 1, parse_duration_ms(interval), list(series.items()), histograms))
    return next_index


_INSTANT = re.compile(r"^(?P<cmd>eval\w*) instant at (?P<at>\S+) (?P<query>.+)$")
_RANGE = re.compile(r"^(?P<cmd>eval\w*) range from (?P<start>\S+) to (?P<end>\S+) step (?P<step>\S+) (?P<query>.+)$")


def _read_eval(lines: list[str], index: int, commands: list[object]) -> int:
    header = lines[index]
    instant = _INSTANT.match(header)
    ranged = _RANGE.match(header)
    if instant:
        at = parse_duration_ms(instant.group("at"))
        case = Case(index + 1, instant.group("query"), at, at, 0)
        command = instant.group("cmd")
    elif ranged:
        case = Case(index + 1, ranged.group("query"), parse_duration_ms(ranged.group("start")),
                    parse_duration_ms(ranged.group("end")), parse_duration_ms(ranged.group("step")))
        command = ranged.group("cmd")
    else:
        raise ValueError(f"line {index + 1}: invalid eval command {header!r}")
    case.fail = command == "eval_fail"
    case.ordered = command == "eval_ordered"
    if command == "eval_warn":
        case.warn = True
    if command == "eval_info":
        case.info = True

    body, next_index = _block(lines, index)
    for _, line in body:
        if line.startswith("expect "):
            _read_expectation(case, line[len("expect "):].strip())
            continue
        if "{{" in line:
            case.has_histogram_literal = True
            continue
        try:
            case.expected_scalar = float(line)
            continue
        except ValueError:
            pass
        labels, values, histogram = parse_series_line(line)
        case.has_histogram_literal |= histogram
        case.expected_series.append((labels, values))
    commands.append(case)
    return next_index


def _split_message(text: str) -> tuple[str | None, str | None]:
    match = re.match(r"^(msg|regex):\s?(.*)$", text.strip())
    if match is None:
        return None, None
    return (match.group(2), None) if match.group(1) == "msg" else (None, match.group(2))


def _read_expectation(case: Case, text: str) -> None:
    if text.startswith("fail"):
        case.fail = True
        case.fail_message, case.fail_regex = _split_message(text[len("fail"):])
    elif text.startswith("no_warn"):
        case.warn = False
    elif text.startswith("warn"):
        case.warn = True
        case.warn_message, case.warn_regex = _split_message(text[len("warn"):])
    elif text.startswith("no_info"):
        case.info = False
    elif text.startswith("info"):
        case.info = True
        case.info_message, _ = _split_message(text[len("info"):])
    elif text.startswith("ordered"):
        case.ordered = True
    elif text.startswith("range vector"):
        match = re.match(r"range vector from (\S+) to (\S+) step (\S+)", text)
        case.range_vector = tuple(parse_duration_ms(part) for part in match.groups())
    elif text.startswith("string"):
        literal = text[len("string"):].strip()
        case.expected_string = literal[1:-1]
    else:
        raise ValueError(f"line {case.line}: unknown expectation {text!r}")


# Running.

class Runner:
    """Run the commands of one file; `compact` moves loaded samples into compressed chunks first."""

    def __init__(self, compact: bool = False):
        self.compact = compact
        self.store: MetricStore | None = None
        self.histogram_series: list[Labels] = []
        self.written: set[tuple[int, int]] = set()
        self.max_ms = 0

    def run_file(self, path: Path) -> FileReport:
        report = FileReport(path.name)
        self._clear()
        for command in read_commands(path.read_text(encoding="utf-8")):
            if command == "clear":
                self._clear()
            elif isinstance(command, Load):
                self._load(command)
            else:
                report.outcomes.append(self._run_case(command))
        self._clear()
        return report

    def _clear(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store = MetricStore(None)
        self.histogram_series = []
        self.written = set()
        self.max_ms = 0

    def _load(self, load: Load) -> None:
        ids: list[int] = []
        stamps: list[int] = []
        values: list[float] = []
        for labels, series_values in load.series:
            series_id = self.store.registry.get_or_create(labels)
            for position, value in enumerate(series_values):
                if value is None:
                    continue
                timestamp = position * load.interval_ms
                # A sample already loaded for this time stays, as the TSDB rejects the duplicate.
                if (series_id, timestamp) in self.written:
                    continue
                self.written.add((series_id, timestamp))
                ids.append(series_id)
                stamps.append(timestamp)
                values.append(value)
        if ids:
            order = np.lexsort((np.array(stamps), np.array(ids)))
            self.store.write([SampleBatch(np.array(ids, dtype=np.uint32)[order], np.array(stamps, dtype=np.int64)[order],
                                          np.array(values, dtype=np.float64)[order], None)])
            self.max_ms = max(self.max_ms, max(stamps))
        self.histogram_series.extend(load.histogram_series)
        if self.compact:
            self.store.compact(self.max_ms + 24 * 3600 * 1000)

    def _run_case(self, case: Case) -> Outcome:
        if case.has_histogram_literal:
            return Outcome(case, "skipped", NATIVE_HISTOGRAMS)
        try:
            tree = parse_query(case.query)
        except BadQueryError as error:
            if case.fail:
                return self._check_failure(case, error)
            return Outcome(case, "skipped", PARSER_SYNTAX)
        if self._selects_histograms(tree):
            return Outcome(case, "skipped", NATIVE_HISTOGRAMS)

        engine = Engine(self.store, lookback_ms=300_000, max_samples=50_000_000, timeout_s=60.0)
        try:
            if case.step_ms:
                result = engine.range(case.query, case.start_ms, case.end_ms, case.step_ms)
            else:
                result = engine.instant(case.query, case.start_ms)
        except QueryError as error:
            if case.fail:
                return self._check_failure(case, error)
            return Outcome(case, "failed", f"unexpected error: {error}")
        if case.fail:
            return Outcome(case, "failed", "expected an error, got a result")
        problem = self._check_annotations(case, result) or self._compare(case, result)
        if problem:
            return Outcome(case, "failed", problem)
        return Outcome(case, "passed")

    def _selects_histograms(self, tree: nodes.Node) -> bool:
        if not self.histogram_series:
            return False
        for node in nodes.walk(tree):
            if not isinstance(node, nodes.VectorSelector):
                continue
            for group in node.matcher_groups:
                for labels in self.histogram_series:
                    if all(_matches(matcher, labels) for matcher in group):
                        return True
        return False

    @staticmethod
    def _check_failure(case: Case, error: Exception) -> Outcome:
        message = str(error)
        if case.fail_message is not None and message != case.fail_message.strip():
            return Outcome(case, "failed", f"error message {message!r}, expected {case.fail_message!r}")
        if case.fail_regex is not None and not re.search(case.fail_regex, message):
            return Outcome(case, "failed", f"error message {message!r} does not match {case.fail_regex!r}")
        return Outcome(case, "passed")

    @staticmethod
    def _check_annotations(case: Case, result) -> str:
        if case.warn is False and result.warnings:
            return f"unexpected warnings {result.warnings}"
        if case.warn is True:
            if not result.warnings:
                return "expected a warning, got none"
            if case.warn_message is not None and case.warn_message.strip() not in result.warnings:
                return f"warnings {result.warnings}, expected {case.warn_message!r}"
            if case.warn_regex is not None and not any(re.search(case.warn_regex, item) for item in result.warnings):
                return f"warnings {result.warnings} do not match {case.warn_regex!r}"
        if case.info is False and result.infos:
            return f"unexpected infos {result.infos}"
        if case.info is True:
            if not result.infos:
                return "expected an info annotation, got none"
            if case.info_message is not None and case.info_message.strip() not in result.infos:
                return f"infos {result.infos}, expected {case.info_message!r}"
        return ""

    def _compare(self, case: Case, result) -> str:
        if case.expected_string is not None:
            if result.result_type != "string" or result.value != case.expected_string:
                return f"expected string {case.expected_string!r}, got {result.result_type} {result.value!r}"
            return ""
        if case.expected_scalar is not None:
            if result.result_type != "scalar" or not almost_equal(case.expected_scalar, result.value):
                return f"expected scalar {case.expected_scalar}, got {result.result_type} {result.value!r}"
            return ""
        expected = self._expected_points(case)
        if result.result_type == "scalar":
            actual = [((), [(case.start_ms, result.value)])]
        else:
            actual = [(item.labels, list(zip(item.timestamps_ms.tolist(), item.values.tolist())))
                      for item in result.series]
        if case.step_ms == 0 and case.range_vector is None and result.result_type not in ("vector", "scalar"):
            return f"expected a vector, got {result.result_type}"
        if case.range_vector is not None and result.result_type != "matrix":
            return f"expected a range vector, got {result.result_type}"
        if len(actual) != len(expected):
            return f"expected {len(expected)} series, got {len(actual)}: {_show(actual)}"
        if case.ordered:
            for (want_labels, want_points), (got_labels, got_points) in zip(expected, actual):
                problem = _compare_series(want_labels, want_points, got_labels, got_points)
                if problem:
                    return problem
            return ""
        by_labels = {labels: points for labels, points in actual}
        for want_labels, want_points in expected:
            if want_labels not in by_labels:
                return f"missing series {dict(want_labels)}; got {_show(actual)}"
            problem = _compare_series(want_labels, want_points, want_labels, by_labels[want_labels])
            if problem:
                return problem
        return ""

    @staticmethod
    def _expected_points(case: Case) -> list[tuple[Labels, list[tuple[int, float]]]]:
        if case.range_vector is not None:
            start, _, step = case.range_vector
        elif case.step_ms:
            start, step = case.start_ms, case.step_ms
        else:
            start, step = case.start_ms, 0
        out = []
        for labels, values in case.expected_series:
            points = [(start + index * step, value) for index, value in enumerate(values) if value is not None]
            if not case.step_ms and case.range_vector is None:
                points = points[:1]
            out.append((labels, points))
        return out


def _matches(matcher: Matcher, labels: Labels) -> bool:
    return matcher.matches(dict(labels).get(matcher.name, ""))


def _compare_series(want_labels, want_points, got_labels, got_points) -> str:
    if want_labels != got_labels:
        return f"series {dict(got_labels)} where {dict(want_labels)} was expected"
    if len(want_points) != len(got_points):
        return f"series {dict(want_labels)}: expected points {want_points}, got {got_points}"
    for (want_ms, want_value), (got_ms, got_value) in zip(want_points, got_points):
        if want_ms != got_ms or not almost_equal(want_value, got_value):
            return f"series {dict(want_labels)}: expected points {want_points}, got {got_points}"
    return ""


def almost_equal(expected: float, actual: float) -> bool:
    """Compare like Prometheus' test framework: NaN equals NaN, else a relative epsilon of 1e-6."""
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    if expected == actual:
        return True
    total = abs(expected) + abs(actual)
    diff = abs(expected - actual)
    if expected == 0 or actual == 0 or total < _MIN_NORMAL:
        return diff < EPSILON * _MIN_NORMAL
    return diff / min(total, 1.7976931348623157e308) < EPSILON


def _show(series) -> str:
    text = "; ".join(f"{dict(labels)} {points}" for labels, points in series[:5])
    return text + (" ..." if len(series) > 5 else "")


def format_table(reports: list[FileReport], title: str) -> str:
    """Format per-file counts, the skip reasons and the overall pass rate as a text table."""
    lines = [title, f"{'file':<22}{'evaluated':>10}{'passed':>8}{'failed':>8}{'skipped':>9}  skip reasons"]
    totals = Counter()
    for report in reports:
        counts = {status: report.count(status) for status in ("passed", "failed", "skipped")}
        totals.update(counts)
        totals["evaluated"] += report.evaluated
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(report.skip_reasons().items()))
        lines.append(f"{report.name:<22}{report.evaluated:>10}{counts['passed']:>8}{counts['failed']:>8}"
                     f"{counts['skipped']:>9}  {reasons}")
    lines.append(f"{'total':<22}{totals['evaluated']:>10}{totals['passed']:>8}{totals['failed']:>8}"
                 f"{totals['skipped']:>9}")
    considered = totals["evaluated"] - totals["skipped"]
    rate = totals["passed"] / considered if considered else 1.0
    lines.append(f"pass rate (passed / (evaluated - skipped)): {rate:.2%}")
    for report in reports:
        for outcome in report.outcomes:
            if outcome.status == "failed":
                lines.append(f"FAILED {report.name}:{outcome.case.line}: {outcome.case.query}\n    {outcome.reason}")
    return "\n".join(lines)


def pass_rate(reports: list[FileReport]) -> float:
    passed = sum(report.count("passed") for report in reports)
    considered = sum(report.evaluated - report.count("skipped") for report in reports)
    return passed / considered if considered else 1.0
