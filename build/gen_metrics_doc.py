"""Write docs/metrics.md from the metric catalogue and a node_exporter on this machine.

The first part lists every metric in gosight.agent.catalog. The second lists the
metric families that node_exporter's default collectors expose on this machine and
GoSight does not emit yet. To learn which collector exposes a family, node_exporter
is started once per collector with only that collector enabled, on a free loopback
port, and scraped once.

Run from the repository root:  python build/gen_metrics_doc.py
"""

from __future__ import annotations

import argparse
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gosight.agent.catalog import _SPECS  # noqa: E402 - needs the repository on sys.path
from gosight.config import COLLECTOR_NAMES  # noqa: E402

DEFAULT_NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
START_TIMEOUT_S = 20.0

UNIT_NAMES = {"s": "seconds", "By": "bytes", "1": "ratio", "": ""}

# What differs between GoSight's collectors and node_exporter's, for readers who
# move dashboards or alert rules from one to the other.
DIFFERENCES = """\
## Differences from node_exporter

The names, types and label names above are node_exporter's, and
`tests/agent/test_node_exporter_parity.py` checks the values against Debian's
node_exporter 1.5.0 scraped at the same moment. Where the two differ:

- Default exclusions follow upstream node_exporter, not Debian's build. Debian's
  build also skips the `lo` network device and mount points under `/run`, `/mnt`
  and `/media`. GoSight reports them, and also skips `zram` devices, which
  node_exporter 1.5.0 reports.
- The mount table is this process's `/proc/self/mounts`, while node_exporter reads
  `/proc/1/mounts`. On a host without containers the two are the same.
- Mount points are decoded for every octal escape the kernel writes. node_exporter
  decodes only `\\040` (space) and `\\011` (tab), so a mount point that contains a
  newline or a backslash gets a different `mountpoint` label.
- GoSight waits 5 seconds for a `statfs` call, node_exporter's default
  `--collector.filesystem.mount-timeout`, then reports
  `node_filesystem_device_error 1` for that mount and goes on with the others.
  node_exporter's scrape waits until the call returns, and only later scrapes skip
  the mount. Both skip a hung mount until its call returns.
- `node_filesystem_readonly` is also reported for a mount whose `statfs` failed,
  because it comes from the mount options.
- `node_processes_threads` comes from `/proc/loadavg`; node_exporter sums every
  `/proc/<pid>/stat`. The processes collector of node_exporter is off by default.
- `node_uname_info`'s `nodename` is `agent.hostname` when that setting is set.
- On operating systems other than Linux the agent reports fewer metrics, from
  psutil: memory totals, CPU times by psutil's CPU index, file systems, disks,
  network devices, context switches and interrupts.
"""

CADVISOR_DIFFERENCES = """\
## Container metrics and cAdvisor

The `containers` collector asks Docker or Podman through the Docker Engine API, and
its metric names, types, units and the labels `name`, `image`, `interface` and
`device` are cAdvisor's. Each container is an endpoint of its own, `ctr-` and the
first 12 characters of its id, and its series carry that `endpoint_id`. The labels
`host`, `instance` and `job` are those of the host's agent, as a Prometheus scrape of
cAdvisor gives the labels of the cAdvisor target. Where the collector differs from
cAdvisor:

- `id` is the full container id; cAdvisor's `id` is the container's cgroup path.
- Container labels become `container_label_<name>` only for the names listed in
  `agent.containers.labels`; cAdvisor copies all of them unless told otherwise.
- `container_spec_memory_limit_bytes` is 0 for a container without a memory limit,
  the engine's own convention; cAdvisor reports what the cgroup's limit file holds.
- `container_threads` is the engine's `pids_stats.current`, the pids controller's
  count of tasks. cAdvisor's `container_processes` and `container_tasks_state` are
  not emitted.
- `container_state` and `container_health_status` have no cAdvisor counterpart.
- Statistics are read for running and paused containers only. A container that
  restarts starts its counters again from 0, which `rate()` treats as a reset.
- `container_memory_rss`, `container_memory_cache` and
  `container_memory_working_set_bytes` come from the copy of `memory.stat` in the
  engine's statistics. Podman's compatible API (4.x) leaves that copy out; the
  agent then reads the file of the container's cgroup on the host, through
  `/proc/<pid>/cgroup` of the container's main process. Without either, the three
  metrics are missing.
- Network counters come from `/proc/<pid>/net/dev` of the container's main process
  when the agent can read it, which is cAdvisor's source too, and otherwise from the
  engine. The loopback interface is left out, and a container on the host's network
  has no network series, because the `network` collector reports those interfaces.
- Block I/O is the engine's `blkio_stats.io_service_bytes_recursive`. `device` is
  `/dev/<name>` when sysfs names the device, else `major:minor`. An engine that
  reports no entries gives no series.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-exporter", default=DEFAULT_NODE_EXPORTER, help="path of the node_exporter binary")
    parser.add_argument("--output", default=str(ROOT / "docs" / "metrics.md"), help="file to write")
    args = parser.parse_args()

    if not Path(args.node_exporter).exists():
        print(f"error: {args.node_exporter} not found; install prometheus-node-exporter or pass --node-exporter",
              file=sys.stderr)
        return 1

    version = read_version(args.node_exporter)
    families = families_by_collector(args.node_exporter)
    text = render(version, families)
    Path(args.output).write_text(text, encoding="utf-8")
    print(f"wrote {args.output}: {len(_SPECS)} metrics, node_exporter collectors {len(families)}")
    return 0


def render(version: str, families: dict[str, dict[str, str]]) -> str:
    lines = [
        "# Metrics",
        "",
        "Every metric the GoSight agent emits, and the node_exporter metrics it does not emit yet.",
        "This page is generated by `python build/gen_metrics_doc.py` from `gosight/agent/catalog.py`",
        "and a node_exporter run on the build machine; edit those, not this file.",
        "",
        "Units are the UCUM codes that the agent sends over OpenTelemetry: `s` is seconds, `By` is bytes,",
        "and an empty unit is a count or a value without a unit. Counters only grow, from boot or from the",
        "agent's start; use `rate()` on them.",
        "",
    ]
    lines += render_catalogue()
    lines += [DIFFERENCES, CADVISOR_DIFFERENCES]
    lines += render_missing(version, families)
    return "\n".join(lines).rstrip() + "\n"


def render_catalogue() -> list[str]:
    lines = ["## Metrics the agent emits", ""]
    for collector in ("runner", *COLLECTOR_NAMES):
        specs = [spec for spec in _SPECS if spec.collector == collector]
        title = "agent health (the collection loop)" if collector == "runner" else f"`{collector}` collector"
        lines += [f"### {title}", "", "| Metric | Type | Unit | Labels | Description |", "|---|---|---|---|---|"]
        for spec in specs:
            labels = ", ".join(f"`{label}`" for label in spec.labels)
            unit = f"`{spec.unit}`" if spec.unit else ""
            lines.append(f"| `{spec.name}` | {spec.type} | {unit} | {labels} | {escape_cell(spec.help)} |")
        lines.append("")
    return lines


def render_missing(version: str, families: dict[str, dict[str, str]]) -> list[str]:
    emitted = {spec.name for spec in _SPECS}
    lines = [
        "## node_exporter metrics not emitted yet",
        "",
        f"Metric families exposed by the default collectors of Debian's node_exporter {version} on the",
        f"machine that generated this page ({platform.system()} {platform.release()}, {platform.machine()}),",
        "minus those GoSight emits. Collectors that read hardware or services this machine lacks (sensors,",
        "RAID, InfiniBand, NVMe, systemd and others) expose nothing here and so list nothing, although",
        "they would on other hosts. node_exporter's own process, Go runtime and scrape metrics are left out.",
        "\"(9 of 18)\" means that 9 of the 18 families the collector exposed here are missing from GoSight.",
        "",
    ]
    empty = []
    for collector in sorted(families):
        missing = sorted(name for name in families[collector] if name not in emitted)
        if not families[collector]:
            empty.append(collector)
            continue
        if not missing:
            lines.append(f"- `{collector}`: all emitted")
            continue
        names = ", ".join(f"`{name}`" for name in missing)
        lines.append(f"- `{collector}` ({len(missing)} of {len(families[collector])}): {names}")
    lines += ["", "Default collectors that exposed nothing on this machine: "
              + ", ".join(f"`{name}`" for name in empty) + ".", ""]
    return lines


def escape_cell(text: str) -> str:
    return text.replace("|", "\\|")


def read_version(binary: str) -> str:
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\S+)", output.stdout + output.stderr)
    return match.group(1) if match else "(unknown version)"


def families_by_collector(binary: str) -> dict[str, dict[str, str]]:
    """Return, for each default collector, the families it exposes here, with their TYPE."""
    defaults = scrape(binary, [])
    collectors = sorted(set(re.findall(r'node_scrape_collector_success\{collector="([^"]+)"\}', defaults)))
    # With every collector off, what is left are node_exporter's own metrics. The
    # node_scrape_collector_* families describe each collector's run.
    baseline = set(parse_types(scrape(binary, ["--collector.disable-defaults"])))
    result = {}
    for collector in collectors:
        text = scrape(binary, ["--collector.disable-defaults", f"--collector.{collector}"])
        types = parse_types(text)
        result[collector] = {
            name: kind for name, kind in types.items()
            if name not in baseline and not name.startswith("node_scrape_collector_")
        }
    return result


def parse_types(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


def scrape(binary: str, flags: list[str]) -> str:
    """Start node_exporter with `flags` on a free loopback port, scrape it once and stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", *flags],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            return wait_and_scrape(process, url, log)
        finally:
            process.terminate()
            process.wait(timeout=10)


def wait_and_scrape(process: subprocess.Popen, url: str, log) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"node_exporter exited with {process.returncode}: {log.read().decode(errors='replace')}")
        try:
            response = httpx.get(url, timeout=10.0)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        response.raise_for_status()
        return response.text
    raise RuntimeError(f"node_exporter did not answer {url} within {START_TIMEOUT_S} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
