"""Errors raised by the PromQL engine, one class per Prometheus API error type."""

from __future__ import annotations


class QueryError(Exception):
    """Base class; `error_type` and `status_code` follow the Prometheus HTTP API."""

    error_type = "execution"
    status_code = 422


class BadQueryError(QueryError):
    """The query text or a query parameter is invalid: a parse error, a wrong argument type."""

    error_type = "bad_data"
    status_code = 400


class ExecutionError(QueryError):
    """The query is valid but cannot be evaluated on this data, for example a many-to-many match."""


class TooManySamplesError(ExecutionError):
    """The query would hold more samples in memory than `query.max_samples` allows.

    Prometheus reports this as an execution error (422), not as a timeout.
    """

    def __init__(self, limit: int):
        super().__init__(
            "query processing would load too many samples into memory in query execution; "
            f"the limit is {limit} samples (query.max_samples): select fewer series or a shorter range"
        )
        self.limit = limit


class QueryTimeoutError(QueryError):
    """The query ran longer than its deadline."""

    error_type = "timeout"
    status_code = 503

    def __init__(self, timeout_s: float):
        super().__init__(f"query timed out in expression evaluation after {timeout_s:g} s (query.timeout_s)")
        self.timeout_s = timeout_s
