"""Accepting OTLP metric requests, shared by the gRPC and HTTP receivers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from gosight.logconfig import Throttle
from gosight.server.endpoints import EndpointRegistry, report_conflict
from gosight.server.ingest import IngestPipeline
from gosight.server.normalize import MetricsDecoder
from gosight.server.selfmetrics import ServerMetrics
from gosight.store.ledger import parse_batch_id

log = logging.getLogger(__name__)

BATCH_ID_HEADER = "gosight-batch-id"

# Requests up to this size are decoded on the event loop: handing a few milliseconds of
# work to a thread costs more than it saves. Larger ones go to the thread pool so the
# HTTP side stays responsive.
INLINE_DECODE_BYTES = 256 * 1024


class InvalidRequest(Exception):
    """The request cannot be decoded; retrying it will not help."""


@dataclass
class Accepted:
    samples: int
    rejected: int
    message: str


class MetricsReceiver:
    """Decode, validate and queue OTLP metric requests, then wait for their commit."""

    def __init__(self, decoder: MetricsDecoder, pipeline: IngestPipeline, endpoints: EndpointRegistry,
                 metrics: ServerMetrics, decode_threads: int = 2):
        self.decoder = decoder
        self.pipeline = pipeline
        self.endpoints = endpoints
        self.metrics = metrics
        self._pool = concurrent.futures.ThreadPoolExecutor(decode_threads, thread_name_prefix="gosight-decode")
        self._throttle = Throttle(60.0)

    async def accept(self, request: ExportMetricsServiceRequest | bytes, batch_id: str | None,
                     receiver: str) -> Accepted:
        """Store one request and return what was accepted.

        Raises InvalidRequest for undecodable input, and QueueFull, IngestClosed or
        the store's error when the sender should retry.
        """
        if batch_id is not None:
            try:
                parse_batch_id(batch_id)
            except ValueError as error:
                raise InvalidRequest(str(error)) from None
        if _size(request) <= INLINE_DECODE_BYTES:
            result = self._decode(request, batch_id)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._pool, self._decode, request, batch_id)

        for conflict in result.conflicts:
            report_conflict(conflict, self.metrics)
        self.metrics.samples_received.labels(receiver).inc(result.batch.size)
        if result.rejected:
            self.metrics.samples_rejected.labels(receiver).inc(result.rejected)
            suppressed = self._throttle.allow(("rejected", receiver))
            if suppressed is not None:
                log.warning("samples rejected", extra={"fields": {
                    "receiver": receiver, "reasons": result.rejection_message(), "suppressed": suppressed}})

        future = self.pipeline.submit(result.batch, result.metadata)
        await asyncio.wrap_future(future)
        if result.endpoints:
            self.endpoints.note_data(result.endpoints)
        return Accepted(result.batch.size, result.rejected, result.rejection_message())

    def _decode(self, request: ExportMetricsServiceRequest | bytes, batch_id: str | None):
        if isinstance(request, (bytes, bytearray, memoryview)):
            message = ExportMetricsServiceRequest()
            try:
                message.ParseFromString(bytes(request))
            except DecodeError as error:
                raise InvalidRequest(
                    f"invalid OTLP metrics request: {error}; the body must be a serialized "
                    "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"
                ) from None
            request = message
        return self.decoder.decode(request, batch_id, file_endpoint=self.endpoints.file_data)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _size(request: ExportMetricsServiceRequest | bytes) -> int:
    if isinstance(request, (bytes, bytearray, memoryview)):
        return len(request)
    return request.ByteSize()
