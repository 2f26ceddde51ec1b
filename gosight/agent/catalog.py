"""The catalogue of every metric the agent emits: name, type, unit and help.

The exporter reads it to send counters as monotonic OTLP sums and gauges as gauges,
with the unit; the server stores it as Prometheus metadata; docs/metrics.md lists it.
Units are UCUM codes as OpenTelemetry uses them: `s`, `By`, `1`, or empty.
"""

from __future__ import annotations

from typing import NamedTuple


# Labels of every container series: the full container id, its name and its image.
CONTAINER_LABELS = ("id", "name", "image")


class MetricSpec(NamedTuple):
    name: str
    type: str  # "counter" or "gauge"
    unit: str
    help: str
    collector: str
    labels: tuple[str, ...] = ()  # label names of every series of the metric


_SPECS: list[MetricSpec] = [
    # The agent's own health, reported by the runner.
    MetricSpec("gosight_collector_up", "gauge", "", "1 when the collector's last run succeeded, else 0.", "runner",
               ("collector",)),
    MetricSpec("gosight_collector_duration_seconds", "gauge", "s", "Time the collector's last run took.", "runner",
               ("collector",)),
    MetricSpec("gosight_agent_collections_total", "counter", "", "Collection rounds run since the agent started.",
               "runner"),
    MetricSpec("gosight_agent_spool_dropped_batches_total", "counter", "",
               "Batches dropped from the full spool since the agent started; their samples are lost.", "runner"),
    MetricSpec("gosight_agent_spool_batches", "gauge", "", "Batches waiting in the spool to be sent.", "runner"),
    MetricSpec("gosight_agent_spool_bytes", "gauge", "By", "Size of the batches waiting in the spool.", "runner"),
    # Host collectors, grouped by collector. Names, types and label names are
    # node_exporter's, so its dashboards and alert rules work unchanged.
    *[
        MetricSpec(name, type_, unit, help_, "cpu", ("cpu", "mode"))
        for name, type_, unit, help_ in (
            ("node_cpu_seconds_total", "counter", "s",
             "Time each CPU spent in each mode (user, nice, system, idle, iowait, irq, softirq, steal). "
             "Time running guests is included in user and nice."),
            ("node_cpu_guest_seconds_total", "counter", "s",
             "Time each CPU spent running virtual machine guests, by mode (user or nice). "
             "It is also counted in node_cpu_seconds_total."),
        )
    ],
    MetricSpec("node_load1", "gauge", "", "Load average over 1 minute: runnable plus uninterruptible tasks.", "load"),
    MetricSpec("node_load5", "gauge", "", "Load average over 5 minutes: runnable plus uninterruptible tasks.", "load"),
    MetricSpec("node_load15", "gauge", "", "Load average over 15 minutes: runnable plus uninterruptible tasks.",
               "load"),
    *[
        MetricSpec(f"node_memory_{field}_bytes", "gauge", "By", help_, "memory")
        for field, help_ in (
            ("MemTotal", "Usable physical memory: installed memory less what the kernel reserved at boot."),
            ("MemFree", "Memory not used for anything."),
            ("MemAvailable", "Kernel estimate of memory available to start new programs without swapping, "
                             "counting free memory and reclaimable caches."),
            ("Buffers", "Memory in block device buffers (metadata and raw block I/O)."),
            ("Cached", "Page cache of files, shared memory included, excluding swap cache "
                       "(the meminfo Cached field, without SReclaimable)."),
            ("SwapCached", "Memory that was swapped out and read back, and is still in the swap file."),
            ("Active", "Memory used recently, so not reclaimed unless needed."),
            ("Inactive", "Memory not used recently, the first candidate for reclaim."),
            ("Active_anon", "Anonymous and shared memory used recently."),
            ("Inactive_anon", "Anonymous and shared memory not used recently, a candidate for swap."),
            ("Active_file", "Page cache used recently."),
            ("Inactive_file", "Page cache not used recently, a candidate for reclaim."),
            ("SwapTotal", "Total swap space."),
            ("SwapFree", "Unused swap space."),
            ("Dirty", "Memory waiting to be written back to disk."),
            ("Writeback", "Memory being written back to disk now."),
            ("AnonPages", "Anonymous memory mapped into user page tables."),
            ("Mapped", "Files mapped into memory, such as libraries."),
            ("Shmem", "Shared memory and tmpfs contents."),
            ("Slab", "Kernel data structure caches."),
            ("SReclaimable", "Part of Slab that can be reclaimed, such as dentry and inode caches."),
            ("SUnreclaim", "Part of Slab that cannot be reclaimed under memory pressure."),
            ("KernelStack", "Memory used by kernel stacks of all tasks."),
            ("PageTables", "Memory used by page tables."),
            ("CommitLimit", "Memory that can be committed under strict overcommit (vm.overcommit_memory=2)."),
            ("Committed_AS", "Memory that all processes have allocated, even if not yet used."),
        )
    ],
    *[
        MetricSpec(name, "gauge", unit, help_, "filesystem", ("device", "fstype", "mountpoint"))
        for name, unit, help_ in (
            ("node_filesystem_size_bytes", "By", "Size of the file system."),
            ("node_filesystem_free_bytes", "By", "Free space, including the blocks reserved for root."),
            ("node_filesystem_avail_bytes", "By", "Free space that unprivileged users can use."),
            ("node_filesystem_files", "", "Number of inodes of the file system."),
            ("node_filesystem_files_free", "", "Number of free inodes."),
            ("node_filesystem_readonly", "", "1 when the file system is mounted read-only, else 0."),
            ("node_filesystem_device_error", "",
             "1 when statfs on the mount point failed or timed out, and its size metrics are missing; else 0."),
        )
    ],
    *[
        MetricSpec(name, "counter", unit, help_, "disk", ("device",))
        for name, unit, help_ in (
            ("node_disk_reads_completed_total", "", "Read requests completed."),
            ("node_disk_writes_completed_total", "", "Write requests completed."),
            ("node_disk_read_bytes_total", "By", "Bytes read."),
            ("node_disk_written_bytes_total", "By", "Bytes written."),
            ("node_disk_read_time_seconds_total", "s",
             "Time read requests took, summed over requests, so it grows faster than wall time when they overlap."),
            ("node_disk_write_time_seconds_total", "s",
             "Time write requests took, summed over requests, so it grows faster than wall time when they overlap."),
            ("node_disk_io_time_seconds_total", "s", "Time the device had at least one request in flight."),
            ("node_disk_reads_merged_total", "", "Read requests merged with an adjacent request before being issued."),
            ("node_disk_writes_merged_total", "",
             "Write requests merged with an adjacent request before being issued."),
        )
    ],
    *[
        MetricSpec(name, "counter", unit, help_, "network", ("device",))
        for name, unit, help_ in (
            ("node_network_receive_bytes_total", "By", "Bytes received."),
            ("node_network_transmit_bytes_total", "By", "Bytes sent."),
            ("node_network_receive_packets_total", "", "Packets received."),
            ("node_network_transmit_packets_total", "", "Packets sent."),
            ("node_network_receive_errs_total", "", "Receive errors that the driver counted."),
            ("node_network_transmit_errs_total", "", "Transmit errors that the driver counted."),
            ("node_network_receive_drop_total", "", "Received packets dropped, for example for lack of buffers."),
            ("node_network_transmit_drop_total", "", "Packets dropped before they could be sent."),
        )
    ],
    MetricSpec("node_boot_time_seconds", "gauge", "s", "Time the host booted, in seconds since the Unix epoch.",
               "host"),
    MetricSpec("node_time_seconds", "gauge", "s", "Host clock at collection, in seconds since the Unix epoch.",
               "host"),
    MetricSpec("node_uname_info", "gauge", "",
               "Always 1; the labels are the fields of uname(2). nodename is agent.hostname when that is set.", "host",
               ("sysname", "release", "version", "machine", "nodename", "domainname")),
    MetricSpec("node_os_info", "gauge", "", "Always 1; the labels are fields of os-release(5).", "host",
               ("build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name", "variant",
                "variant_id", "version", "version_codename", "version_id")),
    MetricSpec("node_os_version", "gauge", "",
               "Major and minor part of os-release's VERSION_ID as a number, such as 22.04; "
               "missing when VERSION_ID has none.", "host", ("id", "id_like", "name")),
    MetricSpec("gosight_agent_info", "gauge", "", "Always 1; the label is the version of the GoSight agent.", "host",
               ("version",)),
    MetricSpec("node_procs_running", "gauge", "", "Tasks that are runnable: running or waiting for a CPU.",
               "processes"),
    MetricSpec("node_procs_blocked", "gauge", "", "Tasks blocked waiting for I/O to complete.", "processes"),
    MetricSpec("node_forks_total", "counter", "", "Processes and threads created since boot.", "processes"),
    MetricSpec("node_context_switches_total", "counter", "", "Context switches since boot, on all CPUs.",
               "processes"),
    MetricSpec("node_intr_total", "counter", "", "Interrupts serviced since boot, on all CPUs.", "processes"),
    MetricSpec("node_processes_threads", "gauge", "", "Threads on the host, of all processes.", "processes"),
    MetricSpec("node_processes_max_threads", "gauge", "", "Limit on the number of threads (kernel.threads-max).",
               "processes"),
    MetricSpec("node_processes_max_processes", "gauge", "", "Value at which process IDs wrap around (kernel.pid_max).",
               "processes"),
    # Containers, one OTLP resource (endpoint ctr-<id>) each. Names, types, units and
    # the id, name, image, interface and device labels are cAdvisor's. Series also
    # carry container_label_<name> for the labels listed in agent.containers.labels.
    *[
        MetricSpec(name, type_, unit, help_, "containers", CONTAINER_LABELS + extra)
        for name, type_, unit, extra, help_ in (
            ("container_cpu_usage_seconds_total", "counter", "s", (),
             "CPU time the container's processes used, in user and kernel mode, summed over all CPUs."),
            ("container_cpu_user_seconds_total", "counter", "s", (),
             "CPU time the container's processes spent in user mode."),
            ("container_cpu_system_seconds_total", "counter", "s", (),
             "CPU time the container's processes spent in kernel mode."),
            ("container_memory_usage_bytes", "gauge", "By", (),
             "Memory charged to the container's cgroup, page cache included."),
            ("container_memory_working_set_bytes", "gauge", "By", (),
             "Memory usage minus inactive file pages: the memory the container is actively using, "
             "which the kernel cannot reclaim without writing or dropping recently used data."),
            # cAdvisor's names lack the _bytes suffix. OpenTelemetry's naming rules would add
            # it to a metric with the unit By, so an empty unit keeps the names unchanged.
            ("container_memory_rss", "gauge", "", (),
             "Anonymous memory of the container in bytes (heap, stacks), without page cache: total_rss of "
             "memory.stat on cgroup v1, anon on cgroup v2."),
            ("container_memory_cache", "gauge", "", (),
             "Page cache charged to the container, in bytes: total_cache of memory.stat on cgroup v1, file on "
             "cgroup v2."),
            ("container_spec_memory_limit_bytes", "gauge", "By", (),
             "Memory limit set on the container; 0 when it has none."),
            ("container_network_receive_bytes_total", "counter", "By", ("interface",),
             "Bytes received on a network interface of the container."),
            ("container_network_transmit_bytes_total", "counter", "By", ("interface",),
             "Bytes sent on a network interface of the container."),
            ("container_network_receive_packets_total", "counter", "", ("interface",),
             "Packets received on a network interface of the container."),
            ("container_network_transmit_packets_total", "counter", "", ("interface",),
             "Packets sent on a network interface of the container."),
            ("container_network_receive_errors_total", "counter", "", ("interface",),
             "Receive errors on a network interface of the container."),
            ("container_network_transmit_errors_total", "counter", "", ("interface",),
             "Transmit errors on a network interface of the container."),
            ("container_network_receive_packets_dropped_total", "counter", "", ("interface",),
             "Received packets dropped on a network interface of the container."),
            ("container_network_transmit_packets_dropped_total", "counter", "", ("interface",),
             "Packets dropped before sending on a network interface of the container."),
            ("container_fs_reads_bytes_total", "counter", "By", ("device",),
             "Bytes the container read from a block device, from the cgroup's I/O accounting. Reads served "
             "from the page cache are not counted."),
            ("container_fs_writes_bytes_total", "counter", "By", ("device",),
             "Bytes the container wrote to a block device, from the cgroup's I/O accounting."),
            ("container_threads", "gauge", "", (),
             "Tasks (processes and their threads) in the container's cgroup, from the pids controller."),
            ("container_start_time_seconds", "gauge", "s", (),
             "Time the container last started, in seconds since the Unix epoch."),
            ("container_state", "gauge", "", ("state",),
             "1 for the container's current state and 0 for the others. The states are the engine's: created, "
             "running, paused, restarting, removing, exited and dead."),
            ("container_health_status", "gauge", "", ("status",),
             "1 for the result of the container's health check and 0 for the others: starting, healthy or "
             "unhealthy. Only containers with a health check have this metric."),
        )
    ],
]

CATALOG: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}

