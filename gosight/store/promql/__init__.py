"""PromQL over the embedded metric store.

`Engine(store, ...)` evaluates instant and range queries with Prometheus 3 semantics;
errors are subclasses of `QueryError` carrying the Prometheus API error type.
"""

from gosight.store.promql.engine import Engine, QueryResult, Series
from gosight.store.promql.errors import (BadQueryError, ExecutionError, QueryError, QueryTimeoutError,
                                         TooManySamplesError)

__all__ = ["BadQueryError", "Engine", "ExecutionError", "QueryError", "QueryResult", "QueryTimeoutError", "Series",
           "TooManySamplesError"]
