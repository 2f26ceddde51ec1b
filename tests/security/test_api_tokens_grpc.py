"""User API tokens on the gRPC port: accepted for OTLP Export with metrics:write, refused elsewhere."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from gosight.wire import agent_pb2, agent_pb2_grpc
from tests.support.otlp import exporter, gauge, request_with
from tests.support.processes import ADMIN_USER, Server, start_server
from tests.support.store import read_series


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("api-tokens-grpc")
    running = start_server(base / "data", base / "server.log", "--server.auth.require_agent_token", "true")
    yield running
    if running.proc.process.poll() is None:
        running.proc.stop()


def _token(server: Server, permissions: list[str]) -> str:
    flags = [item for permission in permissions for item in ("--permission", permission)]
    created = subprocess.run([sys.executable, "-m", "gosight", "user", "token", ADMIN_USER, "--data-dir",
                              str(server.data_dir), "--token-name", "collector", *flags],
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def _export(server: Server, token: str, tag: str):
    request = request_with(gauge("collector_probe", [({"tag": tag}, 1.0, time.time_ns())]))
    with grpc.insecure_channel(server.grpc) as channel:
        return exporter(channel)(request.SerializeToString(), timeout=10,
                                 metadata=(("authorization", f"Bearer {token}"),))


def test_api_token_with_metrics_write_sends_over_grpc(server: Server):
    token = _token(server, ["metrics:write"])

    response = _export(server, token, "written")
    with pytest.raises(grpc.RpcError) as reader:
        _export(server, _token(server, ["metrics:read"]), "read-only")
    with pytest.raises(grpc.RpcError) as unknown:
        _export(server, "gsu_" + "x" * 43, "unknown")
    with pytest.raises(grpc.RpcError) as anonymous:
        _export(server, "", "anonymous")
    with grpc.insecure_channel(server.grpc) as channel:
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        hello = agent_pb2.Hello(agent_id="collector-1", endpoint_id="host-collector")
        with pytest.raises(grpc.RpcError) as control:
            list(stub.Connect(iter([agent_pb2.AgentMessage(hello=hello)]), timeout=10,
                              metadata=(("authorization", f"Bearer {token}"),)))
    server.proc.stop()
    stored = {dict(series.labels)["tag"] for series in read_series(server.data_dir, "collector_probe")}

    assert response.partial_success.rejected_data_points == 0
    assert reader.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "lacks metrics:write" in reader.value.details()
    assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "unknown API token" in unknown.value.details()
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED, "the server requires a token"
    assert control.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "API tokens only send metrics" in control.value.details()
    assert stored == {"written"}
