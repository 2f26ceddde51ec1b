"""End to end: real agent and server processes on loopback, checked in the store itself."""

import signal
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from gosight.config import split_host_port
from tests.support.otlp import exporter, gauge, request_with
from tests.support.processes import start_agent, start_server, wait_for
from tests.support.store import read_series

INTERVAL_S = 1.0


def meminfo_total_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def endpoint_with_data(client):
    rows = client.get("/api/v1/endpoints").json()["endpoints"]
    return [row for row in rows if row["last_data"]]


def collection_numbers(data_dir: Path) -> list[float]:
    series = read_series(data_dir, "gosight_agent_collections_total")
    assert len(series) == 1, f"expected one collections series, got {[s.labels for s in series]}"
    return series[0].values.tolist()


def test_agent_metrics_reach_store(server, agent_factory, tmp_path):
    started = time.monotonic()
    agent = agent_factory(server, "--interval", str(INTERVAL_S))

    with server.client() as client:
        rows = wait_for(lambda: endpoint_with_data(client), timeout_s=3 * INTERVAL_S + 2,
                        message="data from the agent within three intervals")
        arrival_s = time.monotonic() - started
        written = float(_metric(client.get("/metrics").text, "gosight_store_samples_written_total"))
    agent.stop()
    server.proc.stop()

    endpoint = rows[0]
    memtotal = read_series(server.data_dir, "node_memory_MemTotal_bytes")
    cpu = read_series(server.data_dir, "node_cpu_seconds_total", mode="user")
    assert arrival_s <= 3 * INTERVAL_S + 2, f"first data took {arrival_s:.2f} s"
    assert written > 0
    assert endpoint["status"] in ("online", "offline"), endpoint
    assert endpoint["facts"]["os"] == "linux"
    assert len(memtotal) == 1
    labels = dict(memtotal[0].labels)
    assert labels["endpoint_id"] == endpoint["endpoint_id"]
    assert labels["job"] == "gosight-agent"
    assert labels["host"] == endpoint["hostname"]
    assert labels["instance"] == endpoint["hostname"]
    assert memtotal[0].values[-1] == meminfo_total_bytes()
    assert len(cpu) >= 1
    for series in cpu:
        steps = np.diff(series.values)
        assert (steps >= 0).all(), f"cpu seconds went down in {dict(series.labels)}: {series.values}"


def _metric(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return line.rsplit(" ", 1)[1]
    return "0"


def test_outage_loses_nothing(tmp_path):
    server = start_server(tmp_path / "server", tmp_path / "server.log")
    agent = start_agent(server.grpc, tmp_path / "agent", tmp_path / "agent.log", "--interval", str(INTERVAL_S))
    spool_dir = tmp_path / "agent" / "spool"
    with server.client() as client:
        wait_for(lambda: endpoint_with_data(client), message="first data")

    server.proc.stop()
    wait_for(lambda: len(list(spool_dir.glob("*.batch"))) >= 4, timeout_s=20,
             message="four batches spooled while the server is down")
    _, grpc_port = split_host_port(server.grpc)
    restarted = start_server(tmp_path / "server", tmp_path / "server2.log", grpc_listen=f"127.0.0.1:{grpc_port}")
    wait_for(lambda: not list(spool_dir.glob("*.batch")), timeout_s=30, message="the spool to drain")
    agent.signal(signal.SIGINT)
    assert agent.process.wait(30) == 0
    restarted.proc.stop()

    numbers = collection_numbers(tmp_path / "server")
    assert numbers == [float(n) for n in range(1, len(numbers) + 1)], f"collections missing or repeated: {numbers}"
    assert len(numbers) >= 6
    assert "export failed; will retry" in agent.log_text()


def test_spool_overflow_is_counted(tmp_path):
    server = start_server(tmp_path / "server", tmp_path / "server.log")
    _, grpc_port = split_host_port(server.grpc)
    agent = start_agent(server.grpc, tmp_path / "agent", tmp_path / "agent.log", "--interval", "0.1",
                        "--agent.spool.max_bytes", str(1 << 20))
    with server.client() as client:
        wait_for(lambda: endpoint_with_data(client), message="first data")
    server.proc.stop()
    agent.wait_for_log("spool full; oldest batches dropped", timeout_s=120)
    restarted = start_server(tmp_path / "server", tmp_path / "server2.log", grpc_listen=f"127.0.0.1:{grpc_port}")
    spool_dir = tmp_path / "agent" / "spool"
    wait_for(lambda: len(list(spool_dir.glob("*.batch"))) <= 2, timeout_s=60, message="the spool to drain")
    agent.signal(signal.SIGINT)
    assert agent.process.wait(30) == 0
    restarted.proc.stop()

    numbers = collection_numbers(tmp_path / "server")
    dropped = read_series(tmp_path / "server", "gosight_agent_spool_dropped_batches_total")[0]
    lost = int(numbers[-1]) - len(numbers)
    assert lost > 0, "the outage outlasted the spool"
    # NOTE: a batch dropped while its send was in flight is counted though it arrived, so one extra is allowed.
    assert lost <= dropped.values[-1] <= lost + 1, "every lost collection is counted as a dropped batch"
    assert read_series(tmp_path / "server", "gosight_agent_spool_bytes")[0].values.max() <= 1 << 20


def test_acknowledged_batches_survive_sigkill(tmp_path):
    server = start_server(tmp_path / "server", tmp_path / "server.log")
    acknowledged: list[int] = []
    stop = threading.Event()
    lock = threading.Lock()
    now_ns = time.time_ns()

    def send(worker: int) -> None:
        channel = grpc.insecure_channel(server.grpc)
        export = exporter(channel)
        number = worker
        while not stop.is_set():
            points = [({"batch": str(number), "i": str(i)}, float(i), now_ns) for i in range(200)]
            payload = request_with(gauge("crash_probe", points)).SerializeToString()
            try:
                export(payload, timeout=10, metadata=(("gosight-batch-id", f"crash.test:{number}"),))
            except grpc.RpcError:
                break
            with lock:
                acknowledged.append(number)
            number += 4
        channel.close()

    workers = [threading.Thread(target=send, args=(index,)) for index in range(4)]
    for worker in workers:
        worker.start()
    wait_for(lambda: len(acknowledged) >= 40, timeout_s=60, message="40 acknowledged batches")
    server.proc.process.send_signal(signal.SIGKILL)
    server.proc.process.wait(10)
    stop.set()
    for worker in workers:
        worker.join(30)

    stored = read_series(tmp_path / "server", "crash_probe")
    per_batch: dict[str, int] = {}
    for series in stored:
        batch = dict(series.labels)["batch"]
        per_batch[batch] = per_batch.get(batch, 0) + len(series.values)
    missing = [number for number in acknowledged if per_batch.get(str(number)) != 200]
    assert len(acknowledged) >= 40
    assert missing == [], f"acknowledged batches missing after SIGKILL: {missing[:20]}"
    assert all(count == 200 for count in per_batch.values()), "no batch may be stored partly or twice"


def test_shutdown_is_clean(server, agent_factory):
    agent = agent_factory(server, "--interval", str(INTERVAL_S))
    with server.client() as client:
        wait_for(lambda: endpoint_with_data(client), message="first data")

    agent.signal(signal.SIGINT)
    agent_code = agent.process.wait(30)
    with server.client() as client:
        status = wait_for(lambda: client.get("/api/v1/endpoints").json()["endpoints"][0]["status"] == "offline"
                          and "offline", message="the endpoint to go offline after goodbye")
    server_code = server.proc.stop()

    assert agent_code == 0, agent.log_text()
    assert status == "offline"
    assert "agent stopped" in agent.log_text()
    assert server_code == 0
    stopped = [line for line in server.proc.lines if line.get("msg") == "server stopped"]
    assert stopped and stopped[0]["drained"] is True
    assert "Traceback" not in server.proc.log_text()
    assert "Traceback" not in agent.log_text()
