"""Host collectors against the live data of this machine, and the metric catalogue."""

from __future__ import annotations

import math
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

import gosight
from gosight.agent.catalog import _SPECS, CATALOG
from gosight.agent.collectors import COLLECTORS, build_collectors, cpu, filesystem, host, procfs
from gosight.agent.collectors.base import Sample
from gosight.agent.collectors.filesystem import FilesystemCollector, FsUsage, Mount
from gosight.config import COLLECTOR_NAMES, HOST_COLLECTORS, Config, load_config

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux /proc files")

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def make_config(**flags: object) -> Config:
    return load_config(["agent"], flags={"agent.server": "127.0.0.1:4317", **flags}, env={})


@pytest.fixture
def config() -> Config:
    return make_config()


def collect(collector) -> list[Sample]:
    return list(collector.collect())


def series(samples: list[Sample]) -> dict[tuple, float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value for sample in samples}


def only(samples: list[Sample], name: str) -> float:
    matching = [sample for sample in samples if sample.name == name]
    assert len(matching) == 1, f"expected one {name} sample, got {matching}"
    return matching[0].value


# --- registry and catalogue


def test_registry_matches_collector_names():
    assert tuple(COLLECTORS) == COLLECTOR_NAMES, f"registry order {tuple(COLLECTORS)}"


@pytest.mark.parametrize("name", COLLECTOR_NAMES)
def test_registry_class_names_itself(name):
    assert COLLECTORS[name].name == name, f"{COLLECTORS[name]} has name {COLLECTORS[name].name!r}"


def test_build_collectors_follows_setting():
    config = make_config(**{"agent.collectors": "memory,cpu,memory"})

    built = build_collectors(config)

    assert [collector.name for collector in built] == ["memory", "cpu"], f"built {built}"


def test_build_collectors_default_builds_all(config):
    built = build_collectors(config)

    assert [collector.name for collector in built] == list(COLLECTOR_NAMES), f"built {built}"


def test_catalogue_names_unique():
    counts = Counter(spec.name for spec in _SPECS)
    duplicates = [name for name, count in counts.items() if count > 1]
    assert not duplicates, f"metric names listed more than once: {duplicates}"


@pytest.mark.parametrize("spec", _SPECS, ids=lambda spec: spec.name)
def test_catalogue_entry_well_formed(spec):
    assert spec.type in ("counter", "gauge"), f"{spec.name} has type {spec.type!r}"
    assert spec.unit in ("s", "By", "1", ""), f"{spec.name} has unit {spec.unit!r}"
    assert spec.help.endswith("."), f"{spec.name} help is not a sentence: {spec.help!r}"
    assert spec.collector in COLLECTOR_NAMES + ("runner",), f"{spec.name} has collector {spec.collector!r}"
    for label in spec.labels:
        assert LABEL_NAME.match(label), f"{spec.name} has invalid label name {label!r}"
        assert not label.startswith("__"), f"{spec.name} uses reserved label name {label!r}"


@pytest.mark.parametrize("spec", _SPECS, ids=lambda spec: spec.name)
def test_catalogue_unit_matches_suffix(spec):
    if spec.type == "counter":
        assert spec.name.endswith("_total"), f"counter {spec.name} lacks _total"
    if "_bytes" in spec.name:
        assert spec.unit == "By", f"{spec.name} has unit {spec.unit!r}"
    if "_seconds" in spec.name:
        assert spec.unit == "s", f"{spec.name} has unit {spec.unit!r}"


@pytest.mark.parametrize("name", HOST_COLLECTORS)
def test_emitted_names_catalogued(config, name):
    samples = collect(COLLECTORS[name](config))

    unknown = sorted({sample.name for sample in samples} - set(CATALOG))
    assert not unknown, f"{name} emits metrics missing from the catalogue: {unknown}"
    foreign = sorted({sample.name for sample in samples if CATALOG[sample.name].collector != name})
    assert not foreign, f"{name} emits metrics the catalogue gives to another collector: {foreign}"


@pytest.mark.parametrize("name", HOST_COLLECTORS)
def test_emitted_labels_match_catalogue(config, name):
    samples = collect(COLLECTORS[name](config))

    for sample in samples:
        expected = set(CATALOG[sample.name].labels)
        assert set(sample.labels) == expected, f"{sample.name} labels {sorted(sample.labels)}, expected {expected}"


@pytest.mark.parametrize("name", HOST_COLLECTORS)
def test_emitted_label_names_valid(config, name):
    samples = collect(COLLECTORS[name](config))

    for sample in samples:
        for label, value in sample.labels.items():
            assert LABEL_NAME.match(label), f"{sample.name} has invalid label name {label!r}"
            assert not label.startswith("__"), f"{sample.name} uses reserved label name {label!r}"
            assert isinstance(value, str), f"{sample.name}{sample.labels} has a non-string label value"


@pytest.mark.parametrize("name", HOST_COLLECTORS)
def test_emitted_values_finite_non_negative(config, name):
    samples = collect(COLLECTORS[name](config))

    for sample in samples:
        assert math.isfinite(sample.value), f"{sample.name}{sample.labels} = {sample.value}"
        assert sample.value >= 0, f"{sample.name}{sample.labels} = {sample.value}"


@pytest.mark.parametrize("name", HOST_COLLECTORS)
def test_emitted_series_unique(config, name):
    samples = collect(COLLECTORS[name](config))

    keys = Counter((sample.name, tuple(sorted(sample.labels.items()))) for sample in samples)
    duplicates = [key for key, count in keys.items() if count > 1]
    assert not duplicates, f"{name} emits the same series twice: {duplicates}"


def has_os_release() -> bool:
    return any(os.path.exists(path) for path in host.OS_RELEASE_PATHS)


@linux_only
@pytest.mark.parametrize("name", HOST_COLLECTORS)
def test_catalogue_entries_emitted_on_linux(config, name):
    # node_os_info and node_os_version need an os-release file, which minimal
    # container images may lack; every other metric exists on any Linux 3.14 or later.
    optional = set() if has_os_release() else {"node_os_info", "node_os_version"}
    expected = {spec.name for spec in _SPECS if spec.collector == name} - optional

    emitted = {sample.name for sample in collect(COLLECTORS[name](config))}

    missing = sorted(expected - emitted)
    assert not missing, f"{name} did not emit {missing}"


# --- cpu


@linux_only
def test_cpu_labels_cover_online_cpus(config):
    samples = collect(cpu.CpuCollector(config))

    cpus = {sample.labels["cpu"] for sample in samples}
    online = os.sysconf("SC_NPROCESSORS_ONLN")
    assert len(cpus) == online, f"cpu labels {sorted(cpus)} for {online} online CPUs"
    modes = {sample.labels["mode"] for sample in samples if sample.name == "node_cpu_seconds_total"}
    assert modes == set(cpu.MODES), f"modes {sorted(modes)}"
    guest_modes = {sample.labels["mode"] for sample in samples if sample.name == "node_cpu_guest_seconds_total"}
    assert guest_modes == {"user", "nice"}, f"guest modes {sorted(guest_modes)}"


def test_cpu_seconds_never_decrease(config):
    collector = cpu.CpuCollector(config)
    first = series(collect(collector))
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass  # spend CPU time so some counters move

    second = series(collect(collector))

    assert first.keys() == second.keys(), f"series changed: {first.keys() ^ second.keys()}"
    for key, value in first.items():
        assert second[key] >= value, f"{key} went from {value} to {second[key]}"
    moved = sum(second[key] > value for key, value in first.items())
    assert moved > 0, "no CPU counter moved although the test used 50 ms of CPU time"


@linux_only
def test_cpu_user_includes_guest_as_kernel_reports(config):
    # The user value equals the kernel's user column, guest time not subtracted.
    ticks_per_second = procfs.clock_ticks_per_second()
    before = procfs.read_stat().cpu_ticks
    samples = collect(cpu.CpuCollector(config))
    after = procfs.read_stat().cpu_ticks

    for sample in samples:
        if sample.name != "node_cpu_seconds_total" or sample.labels["mode"] != "user":
            continue
        number = sample.labels["cpu"]
        low = before[number][0] / ticks_per_second
        high = after[number][0] / ticks_per_second
        assert low <= sample.value <= high, f"cpu {number} user {sample.value}, /proc/stat read {low} then {high}"


def test_cpu_counter_step_back_is_held(config):
    collector = cpu.CpuCollector(config)
    collector._keep_monotonic("0", {"idle": 100.0, "iowait": 5.0})

    kept = collector._keep_monotonic("0", {"idle": 100.5, "iowait": 4.99})

    assert kept["iowait"] == 5.0, f"iowait stepped back to {kept['iowait']}"
    assert kept["idle"] == 100.5, f"idle {kept['idle']}"


def test_cpu_hotplug_restarts_counters(config):
    collector = cpu.CpuCollector(config)
    collector._keep_monotonic("1", {"idle": 100.0, "user": 50.0})

    restarted = collector._keep_monotonic("1", {"idle": 1.0, "user": 0.5})

    assert restarted == {"idle": 1.0, "user": 0.5}, f"after hotplug {restarted}"


# --- load


def test_load_averages_non_negative(config):
    samples = collect(COLLECTORS["load"](config))

    for name in ("node_load1", "node_load5", "node_load15"):
        assert only(samples, name) >= 0, f"{name} = {only(samples, name)}"


@linux_only
def test_load_matches_proc_loadavg_digits(config):
    samples = collect(COLLECTORS["load"](config))

    for name in ("node_load1", "node_load5", "node_load15"):
        value = only(samples, name)
        assert round(value, 2) == value, f"{name} = {value} has more digits than /proc/loadavg"


# --- memory


@pytest.fixture
def memory(config) -> dict[str, float]:
    return {sample.name: sample.value for sample in collect(COLLECTORS["memory"](config))}


def test_memory_free_within_total(memory):
    total = memory["node_memory_MemTotal_bytes"]
    assert 0 < total, f"MemTotal {total}"
    assert memory["node_memory_MemFree_bytes"] <= total, f"MemFree {memory['node_memory_MemFree_bytes']} > {total}"
    assert memory["node_memory_MemAvailable_bytes"] <= total, (
        f"MemAvailable {memory['node_memory_MemAvailable_bytes']} > {total}"
    )
    swap_total = memory["node_memory_SwapTotal_bytes"]
    assert memory["node_memory_SwapFree_bytes"] <= swap_total, (
        f"SwapFree {memory['node_memory_SwapFree_bytes']} > SwapTotal {swap_total}"
    )


@linux_only
def test_memory_total_equals_meminfo(memory):
    text = Path("/proc/meminfo").read_text(encoding="ascii")
    kilobytes = int(re.search(r"^MemTotal:\s+(\d+) kB$", text, re.MULTILINE).group(1))

    assert memory["node_memory_MemTotal_bytes"] == kilobytes * 1024, (
        f"MemTotal {memory['node_memory_MemTotal_bytes']}, /proc/meminfo {kilobytes} kB"
    )


@linux_only
def test_memory_values_whole_kilobytes(memory):
    for name, value in memory.items():
        assert value % 1024 == 0, f"{name} = {value} is not a whole number of kB"


@linux_only
def test_memory_fields_from_one_snapshot(memory):
    # The kernel computes these sums in the same read, so they hold exactly when the
    # collector takes all fields from one read of /proc/meminfo.
    active = memory["node_memory_Active_anon_bytes"] + memory["node_memory_Active_file_bytes"]
    assert memory["node_memory_Active_bytes"] == active, f"Active {memory['node_memory_Active_bytes']} != {active}"
    slab = memory["node_memory_SReclaimable_bytes"] + memory["node_memory_SUnreclaim_bytes"]
    assert memory["node_memory_Slab_bytes"] == slab, f"Slab {memory['node_memory_Slab_bytes']} != {slab}"


@linux_only
def test_memory_cached_excludes_sreclaimable(memory):
    # psutil's `cached` is Cached + SReclaimable; node_memory_Cached_bytes is Cached alone.
    cached = memory["node_memory_Cached_bytes"]
    reclaimable = memory["node_memory_SReclaimable_bytes"]
    psutil_cached = psutil.virtual_memory().cached

    assert abs(psutil_cached - reclaimable - cached) < abs(psutil_cached - cached) or reclaimable == 0, (
        f"Cached {cached}, SReclaimable {reclaimable}, psutil cached {psutil_cached}"
    )


def test_meminfo_parser_scales_kilobytes(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:       24683792 kB\nActive(anon):         32 kB\nHugePages_Total:       7\n")

    values = procfs.read_meminfo(str(path))

    assert values == {"MemTotal": 24683792 * 1024, "Active(anon)": 32 * 1024, "HugePages_Total": 7}, f"{values}"


# --- filesystem


@pytest.fixture
def filesystems(config) -> list[Sample]:
    return collect(FilesystemCollector(config))


def per_mount(samples: list[Sample]) -> dict[str, dict[str, float]]:
    mounts: dict[str, dict[str, float]] = {}
    for sample in samples:
        mounts.setdefault(sample.labels["mountpoint"], {})[sample.name] = sample.value
    return mounts


@linux_only
def test_filesystem_root_reported(filesystems):
    mounts = per_mount(filesystems)

    assert "/" in mounts, f"mount points {sorted(mounts)}"
    assert mounts["/"]["node_filesystem_device_error"] == 0, f"/ {mounts['/']}"


@linux_only
def test_filesystem_root_size_equals_statvfs(filesystems):
    result = os.statvfs("/")

    size = per_mount(filesystems)["/"]["node_filesystem_size_bytes"]

    assert size == result.f_blocks * result.f_bsize, f"size {size}, statvfs {result}"


def test_filesystem_space_invariants(filesystems):
    for mountpoint, values in per_mount(filesystems).items():
        if values["node_filesystem_device_error"]:
            continue
        size = values["node_filesystem_size_bytes"]
        free = values["node_filesystem_free_bytes"]
        avail = values["node_filesystem_avail_bytes"]
        assert 0 <= avail, f"{mountpoint} avail {avail}"
        assert avail <= free, f"{mountpoint} avail {avail} > free {free}"
        assert free <= size, f"{mountpoint} free {free} > size {size}"
        if "node_filesystem_files" in values:
            files_free = values["node_filesystem_files_free"]
            files = values["node_filesystem_files"]
            assert files_free <= files, f"{mountpoint} files_free {files_free} > files {files}"
        assert values["node_filesystem_readonly"] in (0, 1), f"{mountpoint} readonly {values}"


def test_filesystem_excluded_mounts_absent(config, filesystems):
    exclude_mountpoints = re.compile(config["agent.filesystem.exclude_mountpoints"])
    exclude_fstypes = re.compile(config["agent.filesystem.exclude_fstypes"])

    for sample in filesystems:
        mountpoint = sample.labels["mountpoint"]
        fstype = sample.labels["fstype"]
        assert not exclude_mountpoints.search(mountpoint), f"excluded mount point {mountpoint} reported"
        assert not exclude_fstypes.search(fstype), f"excluded type {fstype} reported at {mountpoint}"


FAKE_USAGE = FsUsage(size=1000.0, free=600.0, avail=500.0, files=100.0, files_free=40.0)


def fake_mounts() -> list[Mount]:
    return [
        Mount("/dev/a", "/a", "ext4", ("rw",)),
        Mount("/dev/b", "/b", "ext4", ("ro", "relatime")),
        Mount("/dev/c", "/c", "xfs", ("rw",)),
    ]


def test_filesystem_failing_statfs_reported(config):
    def statfs(path: str) -> FsUsage:
        if path == "/b":
            raise PermissionError(13, "Permission denied", path)
        return FAKE_USAGE

    collector = FilesystemCollector(config, statfs=statfs, read_mounts=fake_mounts)

    mounts = per_mount(collect(collector))

    assert mounts["/b"]["node_filesystem_device_error"] == 1, f"/b {mounts['/b']}"
    assert "node_filesystem_size_bytes" not in mounts["/b"], f"/b {mounts['/b']}"
    assert mounts["/b"]["node_filesystem_readonly"] == 1, f"/b {mounts['/b']}"
    assert mounts["/a"]["node_filesystem_size_bytes"] == 1000.0, f"/a {mounts['/a']}"
    assert mounts["/c"]["node_filesystem_avail_bytes"] == 500.0, f"/c {mounts['/c']}"


def test_filesystem_hung_statfs_skipped(config):
    release = threading.Event()
    calls = Counter()

    def statfs(path: str) -> FsUsage:
        calls[path] += 1
        if path == "/a":
            release.wait(30)
        return FAKE_USAGE

    collector = FilesystemCollector(config, statfs=statfs, read_mounts=fake_mounts, timeout_s=1.0)
    try:
        started = time.monotonic()
        first = per_mount(collect(collector))
        first_s = time.monotonic() - started
        started = time.monotonic()
        second = per_mount(collect(collector))
        second_s = time.monotonic() - started
    finally:
        release.set()

    assert first["/a"]["node_filesystem_device_error"] == 1, f"/a {first['/a']}"
    assert first["/b"]["node_filesystem_size_bytes"] == 1000.0, f"/b behind the hung mount: {first['/b']}"
    assert first["/c"]["node_filesystem_size_bytes"] == 1000.0, f"/c behind the hung mount: {first['/c']}"
    assert first_s < 5.0, f"first collection took {first_s:.2f} s with a 1 s timeout"
    assert second["/a"]["node_filesystem_device_error"] == 1, f"/a {second['/a']}"
    # Waiting again would take the full 1 s timeout.
    assert second_s < 1.0, f"second collection took {second_s:.2f} s although /a is known to hang"
    assert calls["/a"] == 1, f"statfs called {calls['/a']} times on the hung mount"


def test_filesystem_hung_mount_returns(config):
    release = threading.Event()

    def statfs(path: str) -> FsUsage:
        if path == "/a":
            release.wait(30)
        return FAKE_USAGE

    collector = FilesystemCollector(config, statfs=statfs, read_mounts=fake_mounts, timeout_s=0.1)
    hung = per_mount(collect(collector))
    release.set()

    deadline = time.monotonic() + 10
    recovered = per_mount(collect(collector))
    while recovered["/a"]["node_filesystem_device_error"] and time.monotonic() < deadline:
        recovered = per_mount(collect(collector))

    assert hung["/a"]["node_filesystem_device_error"] == 1, f"/a {hung['/a']}"
    assert recovered["/a"]["node_filesystem_device_error"] == 0, f"/a {recovered['/a']}"
    assert recovered["/a"]["node_filesystem_size_bytes"] == 1000.0, f"/a {recovered['/a']}"


def test_filesystem_excludes_and_dedupes():
    config = make_config(**{
        "agent.filesystem.exclude_mountpoints": "^/skip($|/)",
        "agent.filesystem.exclude_fstypes": "^tmpfs$",
    })
    mounts = [
        Mount("/dev/a", "/a", "ext4", ("rw",)),
        Mount("/dev/a", "/a", "ext4", ("rw",)),
        Mount("/dev/s", "/skip/inner", "ext4", ("rw",)),
        Mount("tmpfs", "/t", "tmpfs", ("rw",)),
        Mount("/dev/k", "/skipped-not", "ext4", ("rw",)),
    ]
    collector = FilesystemCollector(config, statfs=lambda path: FAKE_USAGE, read_mounts=lambda: mounts)

    samples = collect(collector)

    reported = sorted(per_mount(samples))
    assert reported == ["/a", "/skipped-not"], f"reported {reported}"
    sizes = [sample for sample in samples if sample.name == "node_filesystem_size_bytes"]
    assert len(sizes) == 2, f"size samples {sizes}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/mnt/my\\040disk", "/mnt/my disk"),
        ("/mnt/tab\\011here", "/mnt/tab\there"),
        ("/mnt/back\\134slash", "/mnt/back\\slash"),
        ("/plain", "/plain"),
    ],
)
def test_mountpoint_unescape(raw, expected):
    assert filesystem.unescape_octal(raw) == expected, f"{raw!r} -> {filesystem.unescape_octal(raw)!r}"


# --- disk


@linux_only
def test_disk_excluded_devices_absent(config):
    exclude = re.compile(config["agent.disk.exclude_devices"])

    devices = {sample.labels["device"] for sample in collect(COLLECTORS["disk"](config))}

    excluded = sorted(device for device in devices if exclude.search(device))
    assert not excluded, f"excluded devices reported: {excluded}"
    assert devices, "no disk device reported"


def read_diskstats() -> dict[str, list[int]]:
    stats = {}
    with open("/proc/diskstats", encoding="ascii") as file:
        for line in file:
            fields = line.split()
            stats[fields[2]] = [int(value) for value in fields[3:]]
    return stats


@linux_only
def test_disk_counters_equal_diskstats(config):
    # Columns of /proc/diskstats after the name, and node_exporter's scaling.
    columns = {
        "node_disk_reads_completed_total": (0, 1),
        "node_disk_reads_merged_total": (1, 1),
        "node_disk_read_bytes_total": (2, 512),
        "node_disk_read_time_seconds_total": (3, 0.001),
        "node_disk_writes_completed_total": (4, 1),
        "node_disk_writes_merged_total": (5, 1),
        "node_disk_written_bytes_total": (6, 512),
        "node_disk_write_time_seconds_total": (7, 0.001),
        "node_disk_io_time_seconds_total": (9, 0.001),
    }
    before = read_diskstats()
    samples = collect(COLLECTORS["disk"](config))
    after = read_diskstats()

    for sample in samples:
        column, scale = columns[sample.name]
        device = sample.labels["device"]
        low = before[device][column] * scale
        high = after[device][column] * scale
        assert low <= sample.value <= high, f"{sample.name}{{{device}}} {sample.value}, diskstats {low}..{high}"


# --- network


def test_network_loopback_reported_by_default(config):
    devices = {sample.labels["device"] for sample in collect(COLLECTORS["network"](config))}

    loopback = {"lo", "lo0", "Loopback Pseudo-Interface 1"}
    assert devices & loopback, f"devices {sorted(devices)}"


def test_network_exclude_drops_device(config):
    config = make_config(**{"agent.network.exclude_devices": "^lo0?$"})

    devices = {sample.labels["device"] for sample in collect(COLLECTORS["network"](config))}

    assert "lo" not in devices, f"devices {sorted(devices)}"
    assert "lo0" not in devices, f"devices {sorted(devices)}"


@linux_only
def test_network_bytes_equal_proc_net_dev(config):
    def read_net_dev() -> dict[str, tuple[int, int]]:
        result = {}
        with open("/proc/net/dev", encoding="ascii") as file:
            for line in file.readlines()[2:]:
                name, _, rest = line.rpartition(":")
                fields = rest.split()
                result[name.strip()] = (int(fields[0]), int(fields[8]))
        return result

    before = read_net_dev()
    samples = collect(COLLECTORS["network"](config))
    after = read_net_dev()

    for sample in samples:
        device = sample.labels["device"]
        if sample.name == "node_network_receive_bytes_total":
            low, high = before[device][0], after[device][0]
        elif sample.name == "node_network_transmit_bytes_total":
            low, high = before[device][1], after[device][1]
        else:
            continue
        assert low <= sample.value <= high, f"{sample.name}{{{device}}} {sample.value}, /proc/net/dev {low}..{high}"


# --- host


def test_host_time_is_now(config):
    before = time.time()
    samples = collect(COLLECTORS["host"](config))
    after = time.time()

    value = only(samples, "node_time_seconds")
    assert before <= value <= after, f"node_time_seconds {value} outside {before}..{after}"


@linux_only
def test_host_boot_time_equals_btime(config):
    samples = collect(COLLECTORS["host"](config))
    btime = procfs.read_stat().counters["btime"]

    value = only(samples, "node_boot_time_seconds")
    # The kernel derives btime from the wall clock at each read, so two reads can
    # differ by the one second the rounding crosses.
    assert abs(value - btime) <= 1, f"node_boot_time_seconds {value}, btime {btime}"


@pytest.mark.skipif(not hasattr(os, "uname"), reason="os.uname is POSIX only")
def test_host_uname_labels(config):
    uname = os.uname()

    labels = [sample.labels for sample in collect(COLLECTORS["host"](config)) if sample.name == "node_uname_info"][0]

    assert labels["sysname"] == uname.sysname, f"{labels}"
    assert labels["release"] == uname.release, f"{labels}"
    assert labels["version"] == uname.version, f"{labels}"
    assert labels["machine"] == uname.machine, f"{labels}"
    assert labels["nodename"] == uname.nodename, f"{labels}"


@linux_only
def test_host_domainname_from_kernel(config):
    with open("/proc/sys/kernel/domainname", encoding="utf-8") as file:
        expected = file.read().strip()

    labels = [sample.labels for sample in collect(COLLECTORS["host"](config)) if sample.name == "node_uname_info"][0]

    assert labels["domainname"] == expected, f"{labels}"


def test_host_nodename_from_setting():
    config = make_config(**{"agent.hostname": "web-1"})

    samples = collect(COLLECTORS["host"](config))

    labels = [sample.labels for sample in samples if sample.name == "node_uname_info"][0]
    assert labels["nodename"] == "web-1", f"{labels}"


def test_host_agent_version(config):
    samples = collect(COLLECTORS["host"](config))

    labels = [sample.labels for sample in samples if sample.name == "gosight_agent_info"]
    assert labels == [{"version": gosight.__version__}], f"{labels}"


@pytest.mark.skipif(not has_os_release(), reason="no os-release file on this machine")
def test_host_os_info_matches_file(config):
    release = host.OsReleaseReader().read()

    samples = collect(COLLECTORS["host"](config))

    labels = [sample.labels for sample in samples if sample.name == "node_os_info"][0]
    assert labels["id"] == release.get("ID", ""), f"{labels}"
    assert labels["pretty_name"] == release.get("PRETTY_NAME", ""), f"{labels}"


def test_os_release_reread_on_change(tmp_path):
    path = tmp_path / "os-release"
    path.write_text('ID=first\n')
    reader = host.OsReleaseReader((str(path),))
    first = reader.read()
    path.write_text('ID=second\n')
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000_000))

    second = reader.read()

    assert first == {"ID": "first"}, f"{first}"
    assert second == {"ID": "second"}, f"{second}"


def test_os_release_missing_returns_none(tmp_path):
    reader = host.OsReleaseReader((str(tmp_path / "absent"),))

    assert reader.read() is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('NAME="Debian GNU/Linux"', {"NAME": "Debian GNU/Linux"}),
        ("ID=debian", {"ID": "debian"}),
        ("NAME='Single Quoted'", {"NAME": "Single Quoted"}),
        ('PRETTY_NAME="Say \\"hi\\""', {"PRETTY_NAME": 'Say "hi"'}),
        ("# comment\n\nID=x", {"ID": "x"}),
        ('NAME="unbalanced', {"NAME": "unbalanced"}),
        ("NOT A PAIR", {}),
    ],
)
def test_os_release_parse(text, expected):
    assert host.parse_os_release(text) == expected, f"{text!r} -> {host.parse_os_release(text)}"


@pytest.mark.parametrize(
    ("version_id", "expected"),
    [("12", 12.0), ("22.04", 22.04), ("3.18.4", 3.18), ("rolling", 0.0), ("", 0.0)],
)
def test_os_version_number(version_id, expected):
    assert host.os_version_number(version_id) == expected, f"{version_id!r}"


# --- processes


@linux_only
def test_processes_counts_plausible(config):
    samples = collect(COLLECTORS["processes"](config))

    running = only(samples, "node_procs_running")
    threads = only(samples, "node_processes_threads")
    max_threads = only(samples, "node_processes_max_threads")
    max_processes = only(samples, "node_processes_max_processes")
    # This test's own thread is runnable while it reads /proc/stat.
    assert running >= 1, f"node_procs_running {running}"
    assert threads >= 1, f"node_processes_threads {threads}"
    assert threads <= max_threads, f"threads {threads} > max {max_threads}"
    # The kernel rejects a pid_max below 301.
    assert max_processes >= 301, f"node_processes_max_processes {max_processes}"


@linux_only
def test_processes_counters_equal_proc_stat(config):
    keys = {"node_forks_total": "processes", "node_context_switches_total": "ctxt", "node_intr_total": "intr"}
    before = procfs.read_stat().counters
    samples = collect(COLLECTORS["processes"](config))
    after = procfs.read_stat().counters

    for name, key in keys.items():
        value = only(samples, name)
        assert before[key] <= value <= after[key], f"{name} {value}, /proc/stat {before[key]}..{after[key]}"


# --- documentation


def test_docs_list_every_metric():
    text = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text(encoding="utf-8")

    missing = [spec.name for spec in _SPECS if f"| `{spec.name}` |" not in text]

    assert not missing, f"docs/metrics.md lacks {missing}; run python build/gen_metrics_doc.py"
