"""OTLP/HTTP metrics receiver: POST /v1/metrics with a protobuf or JSON body.

Status codes follow the OTLP/HTTP specification: 200 with an
ExportMetricsServiceResponse (carrying `partial_success` when points were rejected),
400 for a body that cannot be decoded, 413 when it is too large, 415 for other
content types, and 503 with Retry-After when the server is busy, so the sender retries.
A missing or invalid agent token gets 401, a token bound to another agent 403, before
the body is read. A user's API token with metrics:write, checked by the auth
middleware, is accepted in place of an agent token. Error bodies are google.rpc.Status in the request's encoding.
"""

from __future__ import annotations

import zlib

from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gosight.auth.middleware import principal_of
from gosight.security.guard import (
    AGENT_ID_HEADER,
    AUTHORIZATION_HEADER,
    HTTP,
    INVALID_ARGUMENT,
    PERMISSION_DENIED,
    UNAUTHENTICATED,
    CallGuard,
    CallRejected,
)
from gosight.server.api.bodies import BodyTooLarge, read_body
from gosight.server.ingest import IngestClosed, QueueFull
from gosight.server.receivers.metrics import BATCH_ID_HEADER, InvalidRequest, MetricsReceiver

RECEIVER = "otlp_http"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RETRY_AFTER_S = "5"

# gRPC status codes used in google.rpc.Status bodies.
_INVALID_ARGUMENT = 3
_PERMISSION_DENIED = 7
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14
_UNAUTHENTICATED = 16

_REJECTION_STATUS = {
    UNAUTHENTICATED: (401, _UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"}),
    PERMISSION_DENIED: (403, _PERMISSION_DENIED, None),
    INVALID_ARGUMENT: (400, _INVALID_ARGUMENT, None),
}


class _TooLarge(Exception):
    pass


async def receive_metrics(request: Request) -> Response:
    receiver: MetricsReceiver = request.app.state.metrics_receiver
    limit = request.app.state.config["server.ingest.max_message_bytes"]
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    as_json = content_type == JSON
    rejected = await _authenticate(request, receiver, as_json)
    if rejected is not None:
        return rejected
    if content_type not in (PROTOBUF, JSON):
        return _error(receiver, 415, _INVALID_ARGUMENT,
                      f"unsupported content type {content_type or '(none)'!r}; send {PROTOBUF} or {JSON}", as_json)

    try:
        body = await read_body(request, limit)
        body = _decompress(body, request.headers.get("content-encoding", "").strip().lower(), limit)
    except (_TooLarge, BodyTooLarge):
        return _error(receiver, 413, _RESOURCE_EXHAUSTED,
                      f"request body larger than {limit} bytes; send smaller batches or raise "
                      "server.ingest.max_message_bytes", as_json)
    except InvalidRequest as error:
        return _error(receiver, 400, _INVALID_ARGUMENT, str(error), as_json)
    except ClientDisconnect:
        return Response(status_code=400)

    try:
        message: ExportMetricsServiceRequest | bytes = _parse_json(body) if as_json else body
        accepted = await receiver.accept(message, request.headers.get(BATCH_ID_HEADER), RECEIVER)
    except InvalidRequest as error:
        return _error(receiver, 400, _INVALID_ARGUMENT, str(error), as_json)
    except (QueueFull, IngestClosed) as error:
        return _error(receiver, 503, _UNAVAILABLE, f"{error}; retry with backoff", as_json,
                      {"Retry-After": RETRY_AFTER_S})
    except Exception as error:  # noqa: BLE001 - a store failure is retryable, and the sender must hear of it
        return _error(receiver, 503, _UNAVAILABLE, f"storing the samples failed: {error}; retry later", as_json,
                      {"Retry-After": RETRY_AFTER_S})

    receiver.metrics.requests.labels(RECEIVER, "ok").inc()
    response = ExportMetricsServiceResponse()
    if accepted.rejected:
        response.partial_success.rejected_data_points = accepted.rejected
        response.partial_success.error_message = accepted.message
    return _message(response, 200, as_json)


async def _authenticate(request: Request, receiver: MetricsReceiver, as_json: bool) -> Response | None:
    """Check the sender's token as the gRPC port does; return the error response, or None to go on."""
    guard: CallGuard | None = getattr(request.app.state, "call_guard", None)
    if guard is None or principal_of(request) is not None:
        # The auth middleware already accepted a user's API token with metrics:write.
        return None
    peer = f"{request.client.host}:{request.client.port}" if request.client else ""
    try:
        await guard.authenticate(HTTP, request.headers.get(AUTHORIZATION_HEADER), request.headers.get(AGENT_ID_HEADER),
                                 None, peer)
    except CallRejected as rejection:
        status, code, headers = _REJECTION_STATUS[rejection.status]
        return _error(receiver, status, code, rejection.message, as_json, headers)
    return None


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise InvalidRequest(f"unsupported content encoding {encoding!r}; send gzip or no encoding")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise InvalidRequest(f"invalid gzip body: {error}") from None
    if len(data) > limit:
        raise _TooLarge()
    return data


def _parse_json(body: bytes) -> ExportMetricsServiceRequest:
    message = ExportMetricsServiceRequest()
    try:
        json_format.Parse(body.decode("utf-8"), message, ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError) as error:
        raise InvalidRequest(f"invalid OTLP JSON metrics request: {error}") from None
    return message


def _message(message, status: int, as_json: bool, headers: dict[str, str] | None = None) -> Response:
    if as_json:
        return Response(json_format.MessageToJson(message, indent=None), status_code=status, media_type=JSON,
                        headers=headers)
    return Response(message.SerializeToString(), status_code=status, media_type=PROTOBUF, headers=headers)


def _error(receiver: MetricsReceiver, status: int, code: int, text: str, as_json: bool,
           headers: dict[str, str] | None = None) -> Response:
    receiver.metrics.requests.labels(RECEIVER, str(status)).inc()
    return _message(status_pb2.Status(code=code, message=text), status, as_json, headers)
