// Chart definitions: the endpoint detail tabs, the container charts and the fleet
// charts of the overview. Every chart is PromQL over node_exporter and cAdvisor
// metric names; $__rate_interval becomes a window that suits the chart's step (see
// expandQuery). Adding a tab is one entry in ENDPOINT_TABS.

import type { PanelDef } from '../components/Chart';
import { promString } from '../lib/api';

export interface TabDef {
  id: string;
  label: string;
  panels: (selector: string) => PanelDef[];
  /**
   * "containers": the tab lists the host's containers above its charts, `panels` gets a
   * selector of those containers instead of the host, and the tab shows only on hosts
   * that have containers.
   */
  scope?: 'containers';
}

/** Build the label matcher list of one endpoint, for use inside {...}. */
export function endpointSelector(endpointId: string): string {
  return `endpoint_id=${promString(endpointId)}`;
}

function join(...matchers: string[]): string {
  const present = matchers.filter(Boolean);
  return present.length ? `{${present.join(', ')}}` : '';
}

const RATE = '[$__rate_interval]';

/** CPU busy percent per endpoint: 100 minus the idle share averaged over CPUs. */
export function cpuPercentExpr(selector: string): string {
  return `100 * (1 - avg by (endpoint_id, host) (rate(node_cpu_seconds_total${join(selector, 'mode="idle"')}${RATE})))`;
}

export function memoryPercentExpr(selector: string): string {
  const sel = join(selector);
  return `100 * (1 - node_memory_MemAvailable_bytes${sel} / node_memory_MemTotal_bytes${sel})`;
}

export function filesystemPercentExpr(selector: string): string {
  const sel = join(selector);
  return `100 * (1 - node_filesystem_avail_bytes${sel} / node_filesystem_size_bytes${sel})`;
}

function overviewPanels(selector: string): PanelDef[] {
  const netSel = join(selector, 'device!="lo"');
  return [
    { id: 'cpu', title: 'CPU usage', unit: 'percent', queries: [{ expr: cpuPercentExpr(selector), legend: 'CPU busy' }] },
    { id: 'memory', title: 'Memory usage', unit: 'percent', queries: [{ expr: memoryPercentExpr(selector), legend: 'memory used' }] },
    {
      id: 'filesystem',
      title: 'Disk space used per mount',
      unit: 'percent',
      queries: [{ expr: filesystemPercentExpr(selector), legend: '{{mountpoint}}' }],
    },
    {
      id: 'network',
      title: 'Network throughput',
      unit: 'bytes/s',
      description: 'All devices except the loopback',
      queries: [
        { expr: `sum(rate(node_network_receive_bytes_total${netSel}${RATE}))`, legend: 'received' },
        { expr: `sum(rate(node_network_transmit_bytes_total${netSel}${RATE}))`, legend: 'sent' },
      ],
    },
    {
      id: 'disk-io',
      title: 'Disk throughput',
      unit: 'bytes/s',
      queries: [
        { expr: `sum(rate(node_disk_read_bytes_total${join(selector)}${RATE}))`, legend: 'read' },
        { expr: `sum(rate(node_disk_written_bytes_total${join(selector)}${RATE}))`, legend: 'written' },
      ],
    },
    {
      id: 'load',
      title: 'Load average',
      unit: 'none',
      queries: [
        { expr: `node_load1${join(selector)}`, legend: '1 min' },
        { expr: `node_load5${join(selector)}`, legend: '5 min' },
        { expr: `node_load15${join(selector)}`, legend: '15 min' },
      ],
    },
  ];
}

function computePanels(selector: string): PanelDef[] {
  const sel = join(selector);
  return [
    {
      id: 'cpu-mode',
      title: 'CPU time by mode',
      unit: 'percent',
      description: 'Share of all CPUs spent in each mode, idle left out',
      queries: [
        {
          expr: `100 * avg by (mode) (rate(node_cpu_seconds_total${join(selector, 'mode!="idle"')}${RATE}))`,
          legend: '{{mode}}',
        },
      ],
    },
    {
      id: 'cpu-per-core',
      title: 'CPU usage per CPU',
      unit: 'percent',
      queries: [
        {
          expr: `100 * (1 - rate(node_cpu_seconds_total${join(selector, 'mode="idle"')}${RATE}))`,
          legend: 'cpu {{cpu}}',
        },
      ],
    },
    {
      id: 'load',
      title: 'Load average',
      unit: 'none',
      queries: [
        { expr: `node_load1${sel}`, legend: '1 min' },
        { expr: `node_load5${sel}`, legend: '5 min' },
        { expr: `node_load15${sel}`, legend: '15 min' },
      ],
    },
    {
      id: 'procs',
      title: 'Tasks',
      unit: 'none',
      queries: [
        { expr: `node_procs_running${sel}`, legend: 'runnable' },
        { expr: `node_procs_blocked${sel}`, legend: 'blocked on I/O' },
      ],
    },
    {
      id: 'context-switches',
      title: 'Context switches and interrupts',
      unit: 'ops/s',
      queries: [
        { expr: `rate(node_context_switches_total${sel}${RATE})`, legend: 'context switches' },
        { expr: `rate(node_intr_total${sel}${RATE})`, legend: 'interrupts' },
      ],
    },
    {
      id: 'forks',
      title: 'Processes and threads created',
      unit: 'ops/s',
      queries: [{ expr: `rate(node_forks_total${sel}${RATE})`, legend: 'forks' }],
    },
  ];
}

function memoryPanels(selector: string): PanelDef[] {
  const sel = join(selector);
  return [
    {
      id: 'memory',
      title: 'Memory',
      unit: 'bytes',
      description: 'Used is total minus available: memory that cannot be reclaimed without swapping',
      queries: [
        { expr: `node_memory_MemTotal_bytes${sel} - node_memory_MemAvailable_bytes${sel}`, legend: 'used' },
        { expr: `node_memory_Cached_bytes${sel}`, legend: 'cached' },
        { expr: `node_memory_Buffers_bytes${sel}`, legend: 'buffers' },
        { expr: `node_memory_MemFree_bytes${sel}`, legend: 'free' },
        { expr: `node_memory_MemTotal_bytes${sel}`, legend: 'total' },
      ],
    },
    { id: 'memory-percent', title: 'Memory usage', unit: 'percent', queries: [{ expr: memoryPercentExpr(selector), legend: 'memory used' }] },
    {
      id: 'swap',
      title: 'Swap',
      unit: 'bytes',
      queries: [
        { expr: `node_memory_SwapTotal_bytes${sel} - node_memory_SwapFree_bytes${sel}`, legend: 'used' },
        { expr: `node_memory_SwapTotal_bytes${sel}`, legend: 'total' },
        { expr: `node_memory_SwapCached_bytes${sel}`, legend: 'swap cache' },
      ],
    },
    {
      id: 'memory-kernel',
      title: 'Kernel and dirty memory',
      unit: 'bytes',
      queries: [
        { expr: `node_memory_Slab_bytes${sel}`, legend: 'slab' },
        { expr: `node_memory_PageTables_bytes${sel}`, legend: 'page tables' },
        { expr: `node_memory_Dirty_bytes${sel}`, legend: 'dirty' },
        { expr: `node_memory_Writeback_bytes${sel}`, legend: 'writeback' },
      ],
    },
  ];
}

function diskPanels(selector: string): PanelDef[] {
  const sel = join(selector);
  return [
    {
      id: 'filesystem',
      title: 'Disk space used per mount',
      unit: 'percent',
      queries: [{ expr: filesystemPercentExpr(selector), legend: '{{mountpoint}}' }],
    },
    {
      id: 'filesystem-bytes',
      title: 'Space used per mount',
      unit: 'bytes',
      description: 'Size minus the space available to unprivileged users',
      queries: [
        { expr: `node_filesystem_size_bytes${sel} - node_filesystem_avail_bytes${sel}`, legend: '{{mountpoint}}' },
      ],
    },
    {
      id: 'disk-bytes',
      title: 'Disk throughput per device',
      unit: 'bytes/s',
      queries: [
        { expr: `rate(node_disk_read_bytes_total${sel}${RATE})`, legend: '{{device}} read' },
        { expr: `rate(node_disk_written_bytes_total${sel}${RATE})`, legend: '{{device}} written' },
      ],
    },
    {
      id: 'disk-iops',
      title: 'Disk operations per device',
      unit: 'ops/s',
      queries: [
        { expr: `rate(node_disk_reads_completed_total${sel}${RATE})`, legend: '{{device}} reads' },
        { expr: `rate(node_disk_writes_completed_total${sel}${RATE})`, legend: '{{device}} writes' },
      ],
    },
    {
      id: 'disk-busy',
      title: 'Disk busy time per device',
      unit: 'percent',
      description: 'Share of time with at least one request in flight',
      queries: [{ expr: `100 * rate(node_disk_io_time_seconds_total${sel}${RATE})`, legend: '{{device}}' }],
    },
    {
      id: 'inodes',
      title: 'Inodes used per mount',
      unit: 'percent',
      queries: [
        {
          expr: `100 * (1 - node_filesystem_files_free${sel} / node_filesystem_files${sel})`,
          legend: '{{mountpoint}}',
        },
      ],
    },
  ];
}

function networkPanels(selector: string): PanelDef[] {
  const sel = join(selector, 'device!="lo"');
  return [
    {
      id: 'net-bytes',
      title: 'Throughput per device',
      unit: 'bytes/s',
      queries: [
        { expr: `rate(node_network_receive_bytes_total${sel}${RATE})`, legend: '{{device}} received' },
        { expr: `rate(node_network_transmit_bytes_total${sel}${RATE})`, legend: '{{device}} sent' },
      ],
    },
    {
      id: 'net-packets',
      title: 'Packets per device',
      unit: 'packets/s',
      queries: [
        { expr: `rate(node_network_receive_packets_total${sel}${RATE})`, legend: '{{device}} received' },
        { expr: `rate(node_network_transmit_packets_total${sel}${RATE})`, legend: '{{device}} sent' },
      ],
    },
    {
      id: 'net-errors',
      title: 'Errors per device',
      unit: 'errors/s',
      queries: [
        { expr: `rate(node_network_receive_errs_total${sel}${RATE})`, legend: '{{device}} receive' },
        { expr: `rate(node_network_transmit_errs_total${sel}${RATE})`, legend: '{{device}} transmit' },
      ],
    },
    {
      id: 'net-drops',
      title: 'Dropped packets per device',
      unit: 'packets/s',
      queries: [
        { expr: `rate(node_network_receive_drop_total${sel}${RATE})`, legend: '{{device}} receive' },
        { expr: `rate(node_network_transmit_drop_total${sel}${RATE})`, legend: '{{device}} transmit' },
      ],
    },
  ];
}

/** CPU time of each container in percent of one CPU, so a container using two CPUs shows 200. */
export function containerCpuPercentExpr(selector: string): string {
  return `100 * sum by (endpoint_id, name) (rate(container_cpu_usage_seconds_total${join(selector)}${RATE}))`;
}

/** Charts comparing the containers of one host; `selector` matches those containers. */
function hostContainersPanels(selector: string): PanelDef[] {
  const sel = join(selector);
  return [
    {
      id: 'containers-cpu',
      title: 'CPU per container',
      unit: 'percent',
      description: 'Percent of one CPU',
      queries: [{ expr: containerCpuPercentExpr(selector), legend: '{{name}}' }],
    },
    {
      id: 'containers-memory',
      title: 'Memory working set per container',
      unit: 'bytes',
      queries: [{ expr: `max by (endpoint_id, name) (container_memory_working_set_bytes${sel})`, legend: '{{name}}' }],
    },
    {
      id: 'containers-network',
      title: 'Network throughput per container',
      unit: 'bytes/s',
      queries: [
        { expr: `sum by (endpoint_id, name) (rate(container_network_receive_bytes_total${sel}${RATE}))`, legend: '{{name}} received' },
        { expr: `sum by (endpoint_id, name) (rate(container_network_transmit_bytes_total${sel}${RATE}))`, legend: '{{name}} sent' },
      ],
    },
    {
      id: 'containers-block-io',
      title: 'Block I/O per container',
      unit: 'bytes/s',
      queries: [
        { expr: `sum by (endpoint_id, name) (rate(container_fs_reads_bytes_total${sel}${RATE}))`, legend: '{{name}} read' },
        { expr: `sum by (endpoint_id, name) (rate(container_fs_writes_bytes_total${sel}${RATE}))`, legend: '{{name}} written' },
      ],
    },
  ];
}

/** Charts of one container's detail view; `selector` matches the container. */
export function containerPanels(selector: string): PanelDef[] {
  const sel = join(selector);
  return [
    {
      id: 'container-cpu',
      title: 'CPU usage',
      unit: 'percent',
      description: 'Percent of one CPU',
      queries: [
        { expr: `100 * rate(container_cpu_usage_seconds_total${sel}${RATE})`, legend: 'total' },
        { expr: `100 * rate(container_cpu_user_seconds_total${sel}${RATE})`, legend: 'user' },
        { expr: `100 * rate(container_cpu_system_seconds_total${sel}${RATE})`, legend: 'system' },
      ],
    },
    {
      id: 'container-memory',
      title: 'Memory',
      unit: 'bytes',
      description: 'The working set is usage minus inactive page cache; the limit shows when one is set',
      queries: [
        { expr: `container_memory_usage_bytes${sel}`, legend: 'usage' },
        { expr: `container_memory_working_set_bytes${sel}`, legend: 'working set' },
        { expr: `container_memory_rss${sel}`, legend: 'RSS' },
        { expr: `container_memory_cache${sel}`, legend: 'page cache' },
        { expr: `container_spec_memory_limit_bytes${sel} > 0`, legend: 'limit' },
      ],
    },
    {
      id: 'container-network',
      title: 'Network throughput per interface',
      unit: 'bytes/s',
      queries: [
        { expr: `rate(container_network_receive_bytes_total${sel}${RATE})`, legend: '{{interface}} received' },
        { expr: `rate(container_network_transmit_bytes_total${sel}${RATE})`, legend: '{{interface}} sent' },
      ],
    },
    {
      id: 'container-packets',
      title: 'Packets per interface',
      unit: 'packets/s',
      queries: [
        { expr: `rate(container_network_receive_packets_total${sel}${RATE})`, legend: '{{interface}} received' },
        { expr: `rate(container_network_transmit_packets_total${sel}${RATE})`, legend: '{{interface}} sent' },
        { expr: `rate(container_network_receive_packets_dropped_total${sel}${RATE})`, legend: '{{interface}} dropped in' },
        { expr: `rate(container_network_transmit_packets_dropped_total${sel}${RATE})`, legend: '{{interface}} dropped out' },
      ],
    },
    {
      id: 'container-block-io',
      title: 'Block I/O per device',
      unit: 'bytes/s',
      queries: [
        { expr: `rate(container_fs_reads_bytes_total${sel}${RATE})`, legend: '{{device}} read' },
        { expr: `rate(container_fs_writes_bytes_total${sel}${RATE})`, legend: '{{device}} written' },
      ],
    },
    {
      id: 'container-threads',
      title: 'Tasks',
      unit: 'none',
      description: 'Processes and threads in the container',
      queries: [{ expr: `container_threads${sel}`, legend: 'tasks' }],
    },
  ];
}

export const ENDPOINT_TABS: TabDef[] = [
  { id: 'overview', label: 'Overview', panels: overviewPanels },
  { id: 'compute', label: 'Compute', panels: computePanels },
  { id: 'memory', label: 'Memory', panels: memoryPanels },
  { id: 'disk', label: 'Disk', panels: diskPanels },
  { id: 'network', label: 'Network', panels: networkPanels },
  { id: 'containers', label: 'Containers', panels: hostContainersPanels, scope: 'containers' },
];

/**
 * Return the tabs to show on a host: the containers tab only when the host has
 * containers. While the count is unknown (null) it stays if it is the `requested`
 * tab, so a link to it does not flash another tab first.
 */
export function visibleTabs(tabs: TabDef[], containerCount: number | null, requested: string): TabDef[] {
  return tabs.filter((tab) => {
    if (tab.scope !== 'containers') return true;
    if (containerCount === null) return tab.id === requested;
    return containerCount > 0;
  });
}

/** Charts of the whole fleet on the overview page. */
export function fleetPanels(): PanelDef[] {
  const cpu = cpuPercentExpr('');
  const memory = memoryPercentExpr('');
  const netSel = join('device!="lo"');
  return [
    {
      id: 'fleet-cpu',
      title: 'CPU usage across endpoints',
      unit: 'percent',
      queries: [
        { expr: `avg(${cpu})`, legend: 'average' },
        { expr: `max(${cpu})`, legend: 'busiest endpoint' },
      ],
    },
    {
      id: 'fleet-memory',
      title: 'Memory usage across endpoints',
      unit: 'percent',
      queries: [
        { expr: `avg(${memory})`, legend: 'average' },
        { expr: `max(${memory})`, legend: 'fullest endpoint' },
      ],
    },
    {
      id: 'fleet-network',
      title: 'Network throughput, all endpoints',
      unit: 'bytes/s',
      queries: [
        { expr: `sum(rate(node_network_receive_bytes_total${netSel}${RATE}))`, legend: 'received' },
        { expr: `sum(rate(node_network_transmit_bytes_total${netSel}${RATE}))`, legend: 'sent' },
      ],
    },
    {
      id: 'fleet-reporting',
      title: 'Endpoints reporting',
      unit: 'none',
      queries: [{ expr: 'count(count by (endpoint_id) (node_load1))', legend: 'endpoints' }],
    },
  ];
}
