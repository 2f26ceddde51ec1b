"""GuardInterceptor on an in-process gRPC server: every method shape is authenticated."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from gosight.config import load_config
from gosight.security.guard import (
    GRPC,
    HTTP,
    CallGuard,
    GuardInterceptor,
    current_principal,
    is_loopback,
    token_required_on,
)
from gosight.security.tokens import TokenStore

SERVICE = "test.Echo"
SHAPES = ("UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream")


def echo_handlers() -> grpc.GenericRpcHandler:
    """Build one method per shape; each returns the caller's token id, so the test can check the principal."""

    def principal_id() -> bytes:
        principal = current_principal()
        return (principal.token_id or "anonymous").encode() if principal else b"none"

    async def unary_unary(request, context):
        return principal_id()

    async def unary_stream(request, context):
        yield principal_id()

    async def stream_unary(request_iterator, context):
        async for _ in request_iterator:
            pass
        return principal_id()

    async def stream_stream(request_iterator, context):
        async for _ in request_iterator:
            yield principal_id()

    return grpc.method_handlers_generic_handler(SERVICE, {
        "UnaryUnary": grpc.unary_unary_rpc_method_handler(unary_unary),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary),
        "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream),
    })


async def call(channel: grpc.aio.Channel, shape: str, metadata) -> tuple[grpc.StatusCode, str]:
    method = f"/{SERVICE}/{shape}"
    try:
        if shape == "UnaryUnary":
            reply = await channel.unary_unary(method)(b"x", metadata=metadata, timeout=10)
        elif shape == "UnaryStream":
            reply = b"".join([item async for item in channel.unary_stream(method)(b"x", metadata=metadata,
                                                                                    timeout=10)])
        elif shape == "StreamUnary":
            reply = await channel.stream_unary(method)(iter([b"x"]), metadata=metadata, timeout=10)
        else:
            reply = b"".join([item async for item in channel.stream_stream(method)(iter([b"x"]), metadata=metadata,
                                                                                     timeout=10)])
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, reply.decode()


def run_calls(tmp_path: Path, metadata_of_token) -> dict[str, tuple[grpc.StatusCode, str]]:
    async def scenario() -> dict[str, tuple[grpc.StatusCode, str]]:
        tokens = TokenStore(tmp_path / "meta.sqlite")
        token, record = tokens.create("probe")
        guard = CallGuard(tokens, token_required_on=frozenset({GRPC}), registry=CollectorRegistry())
        server = grpc.aio.server(interceptors=[GuardInterceptor(guard)])
        server.add_generic_rpc_handlers((echo_handlers(),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        results = {}
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for shape in SHAPES:
                results[shape] = await call(channel, shape, metadata_of_token(token))
        await server.stop(None)
        tokens.close()
        results["token_id"] = record.token_id
        return results

    return asyncio.run(scenario())


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_rejects_missing_token(tmp_path: Path, shape: str):
    results = run_calls(tmp_path, lambda token: ())

    code, details = results[shape]
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "missing agent token" in details


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_sees_principal(tmp_path: Path, shape: str):
    results = run_calls(tmp_path, lambda token: (("authorization", f"Bearer {token}"),))

    code, reply = results[shape]
    assert code == grpc.StatusCode.OK, reply
    assert reply == results["token_id"]


@pytest.mark.parametrize("grpc_listen, http_listen, mode, expected", [
    ("127.0.0.1:4317", "127.0.0.1:8080", "auto", set()),
    ("0.0.0.0:4317", "127.0.0.1:8080", "auto", {GRPC}),
    ("[::1]:4317", "localhost:8080", "auto", set()),
    ("127.0.0.1:4317", "[::]:8080", "auto", {HTTP}),
    ("metrics.example:4317", "127.0.0.1:8080", "auto", {GRPC}),
    ("127.0.0.1:4317", "127.0.0.1:8080", "true", {GRPC, HTTP}),
    ("0.0.0.0:4317", "0.0.0.0:8080", "false", set()),
])
def test_token_required_on(grpc_listen: str, http_listen: str, mode: str, expected: set):
    config = load_config(["server"], env={}, flags={"server.grpc.listen": grpc_listen,
                                                     "server.http.listen": http_listen,
                                                     "server.auth.require_agent_token": mode})

    assert token_required_on(config) == expected


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("10.0.0.1", False), ("example.com", False), ("", False),
])
def test_is_loopback(host: str, loopback: bool):
    assert is_loopback(host) is loopback
