// Warnings for a host endpoint id that two or more agents claimed: a banner for the
// endpoint detail page and a marker for the endpoints table.

import type { EndpointConflict } from '../lib/api';
import { agentName, conflictDetails, conflictMarkerTitle, conflictSummary, hintSentence, otherAgents } from '../lib/conflict';
import { formatDateTime } from '../lib/format';
import { Icon } from './Icon';
import { Link, StatusBadge } from './Status';

/**
 * Render the conflict of endpoint `endpointId`: the agents it shares its id with, links
 * to their endpoints and the server's fix. It is an alert while two of the agents are
 * present, and a plain status region once only one is.
 */
export function ConflictBanner({ conflict, endpointId }: { conflict: EndpointConflict; endpointId: string }) {
  const others = otherAgents(conflict, endpointId);
  const hint = hintSentence(conflict.hint);
  const detectedMs = conflict.detected_at ? Date.parse(conflict.detected_at) : NaN;
  return (
    <div
      class={`notice conflict-banner ${conflict.active ? 'notice-warn' : 'notice-muted'}`}
      role={conflict.active ? 'alert' : 'status'}
      data-testid="conflict-banner"
      data-active={String(conflict.active)}
    >
      <p class="conflict-title" data-testid="conflict-summary">
        <Icon name="warning" />
        {conflictSummary(conflict, endpointId)}
      </p>
      <p data-testid="conflict-details">{conflictDetails(conflict, endpointId)}</p>
      {others.length > 0 && (
        <ul class="conflict-agents" aria-label="Agents with the same endpoint id">
          {others.map((agent) => (
            <li key={agent.endpoint_id} data-endpoint={agent.endpoint_id}>
              <Link to={{ page: 'endpoint', endpoint: agent.endpoint_id, tab: 'overview' }}>{agentName(agent)}</Link>
              <span class="muted mono">{agent.endpoint_id}</span>
              <StatusBadge status={agent.status} />
            </li>
          ))}
        </ul>
      )}
      {hint && (
        <p data-testid="conflict-hint">
          <strong>To fix it: </strong>
          {hint}
        </p>
      )}
      {Number.isFinite(detectedMs) && <p class="muted">Detected {formatDateTime(detectedMs)}.</p>}
    </div>
  );
}

/** Render the endpoints table's text marker for an endpoint whose id other agents claimed too. */
export function ConflictMarker({ conflict, endpointId }: { conflict: EndpointConflict; endpointId: string }) {
  const title = conflictMarkerTitle(conflict, endpointId);
  return (
    <span class={conflict.active ? 'conflict-marker conflict-active' : 'conflict-marker'} title={title} data-testid="conflict-marker">
      Shared id
      <span class="visually-hidden">: {title}</span>
    </span>
  );
}
