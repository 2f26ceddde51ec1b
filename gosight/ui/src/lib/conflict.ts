// Text for endpoint id conflicts. Machines cloned from one image can share a machine
// id, so their agents report one host endpoint id. The server keeps the first agent on
// that id and stores each later agent's data under an endpoint of its own.

import type { ConflictAgent, EndpointConflict } from './api';

/** Return the agents of `conflict` whose data is stored under an endpoint other than `endpointId`. */
export function otherAgents(conflict: EndpointConflict, endpointId: string): ConflictAgent[] {
  return conflict.agents.filter((agent) => agent.endpoint_id !== endpointId);
}

/** Name an agent for the operator: its host name, or its endpoint id when it sent none. */
export function agentName(agent: ConflictAgent): string {
  return agent.hostname || agent.endpoint_id;
}

/** Build the banner's first sentence, such as "This machine shares its endpoint id host-1 with another agent." */
export function conflictSummary(conflict: EndpointConflict, endpointId: string): string {
  const count = otherAgents(conflict, endpointId).length;
  const others = count > 1 ? `${count} other agents` : 'another agent';
  return `This machine shares its endpoint id ${conflict.endpoint_id} with ${others}.`;
}

/** Explain where the server stores this endpoint's data and the other agents' data, and whether both are present. */
export function conflictDetails(conflict: EndpointConflict, endpointId: string): string {
  const others = otherAgents(conflict, endpointId);
  let storage: string;
  if (endpointId === conflict.endpoint_id) {
    const where = others.length > 1 ? "the other agents' data under endpoints of their own" : "the other agent's data under an endpoint of its own";
    storage = `This agent keeps the id, and the server stores ${where}, so their charts do not mix.`;
  } else {
    const owner = conflict.agents.find((agent) => agent.endpoint_id === conflict.endpoint_id);
    const keeper = owner ? `The agent on ${agentName(owner)}` : 'Another agent';
    storage = `${keeper} keeps the id, so the server stores this agent's data under this separate endpoint, ${endpointId}, and their charts do not mix.`;
  }
  return conflict.active ? storage : `${storage} Only one of these agents is online or idle now.`;
}

/** Turn the server's hint, one lowercase clause, into a sentence: capitalized and with a final period. */
export function hintSentence(hint: string): string {
  const text = hint.trim();
  if (!text) return '';
  const capitalized = text[0].toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capitalized) ? capitalized : `${capitalized}.`;
}

/** Label of the endpoint list's marker for an endpoint whose id other agents claimed too. */
export function conflictMarkerTitle(conflict: EndpointConflict, endpointId: string): string {
  const names = otherAgents(conflict, endpointId).map(agentName);
  const others = names.length > 0 ? names.join(', ') : 'another agent';
  const state = conflict.active ? '' : ' Only one of them is online or idle now.';
  return `Shares endpoint id ${conflict.endpoint_id} with ${others}. Open the endpoint to see how to fix it.${state}`;
}
