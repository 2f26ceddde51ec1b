"""OTLP/gRPC metrics receiver: opentelemetry.proto.collector.metrics.v1.MetricsService/Export."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from gosight.server.ingest import IngestClosed, QueueFull
from gosight.server.receivers.metrics import BATCH_ID_HEADER, InvalidRequest, MetricsReceiver

SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
RECEIVER = "otlp_grpc"


def metrics_service_handler(receiver: MetricsReceiver) -> grpc.GenericRpcHandler:
    """Build the MetricsService handler; it takes raw bytes so a malformed body gets a clear status."""

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> ExportMetricsServiceResponse:
        batch_id = None
        for key, value in context.invocation_metadata() or ():
            if key == BATCH_ID_HEADER:
                batch_id = value if isinstance(value, str) else value.decode(errors="replace")
        try:
            accepted = await receiver.accept(request, batch_id, RECEIVER)
        except InvalidRequest as error:
            receiver.metrics.requests.labels(RECEIVER, "invalid_argument").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except QueueFull as error:
            receiver.metrics.requests.labels(RECEIVER, "unavailable").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{error}; retry with backoff")
        except IngestClosed as error:
            receiver.metrics.requests.labels(RECEIVER, "unavailable").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{error}; retry with backoff")
        except Exception as error:  # noqa: BLE001 - a store failure is retryable, and the sender must hear of it
            receiver.metrics.requests.labels(RECEIVER, "unavailable").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"storing the samples failed: {error}; retry later")

        receiver.metrics.requests.labels(RECEIVER, "ok").inc()
        response = ExportMetricsServiceResponse()
        if accepted.rejected:
            response.partial_success.rejected_data_points = accepted.rejected
            response.partial_success.error_message = accepted.message
        return response

    handler = grpc.unary_unary_rpc_method_handler(
        export, request_deserializer=None, response_serializer=ExportMetricsServiceResponse.SerializeToString
    )
    return grpc.method_handlers_generic_handler(SERVICE, {"Export": handler})
