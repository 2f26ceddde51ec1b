import { describe, expect, it } from 'vitest';
import type { EndpointConflict } from './api';
import { agentName, conflictDetails, conflictMarkerTitle, conflictSummary, hintSentence, otherAgents } from './conflict';

const SHARED = 'host-c10e00000000';
const SPLIT_B = `${SHARED}-0123456789ab`;
const SPLIT_C = `${SHARED}-ba9876543210`;
const HINT =
  'if these are machines cloned from one image, give each clone its own machine id: delete /etc/machine-id, ' +
  'run systemd-machine-id-setup and restart the agent; if both agents run on one machine, stop one of them';

function conflict(extra: Partial<EndpointConflict> = {}): EndpointConflict {
  return {
    endpoint_id: SHARED,
    active: true,
    detected_at: '2025-01-02T03:04:05.000Z',
    agents: [
      { agent_id: 'agent-a', hostname: 'clone-a', endpoint_id: SHARED, status: 'online' },
      { agent_id: 'agent-b', hostname: 'clone-b', endpoint_id: SPLIT_B, status: 'online' },
    ],
    hint: HINT,
    ...extra,
  };
}

const threeAgents = conflict({
  agents: [
    ...conflict().agents,
    { agent_id: 'agent-c', hostname: '', endpoint_id: SPLIT_C, status: 'idle' },
  ],
});

describe('otherAgents', () => {
  it('leaves out the agent of the endpoint shown', () => {
    expect(otherAgents(conflict(), SHARED).map((agent) => agent.hostname)).toEqual(['clone-b']);
    expect(otherAgents(conflict(), SPLIT_B).map((agent) => agent.hostname)).toEqual(['clone-a']);
  });

  it('lists every other agent in server order', () => {
    expect(otherAgents(threeAgents, SPLIT_B).map((agent) => agent.endpoint_id)).toEqual([SHARED, SPLIT_C]);
  });
});

describe('agentName', () => {
  it('falls back to the endpoint id without a host name', () => {
    expect(agentName(threeAgents.agents[1])).toBe('clone-b');
    expect(agentName(threeAgents.agents[2])).toBe(SPLIT_C);
  });
});

describe('conflictSummary', () => {
  it('names the shared id and one other agent', () => {
    expect(conflictSummary(conflict(), SHARED)).toBe(`This machine shares its endpoint id ${SHARED} with another agent.`);
    expect(conflictSummary(conflict(), SPLIT_B)).toBe(`This machine shares its endpoint id ${SHARED} with another agent.`);
  });

  it('counts several other agents', () => {
    expect(conflictSummary(threeAgents, SHARED)).toBe(`This machine shares its endpoint id ${SHARED} with 2 other agents.`);
  });
});

describe('conflictDetails', () => {
  it('tells the owner that it keeps the id', () => {
    expect(conflictDetails(conflict(), SHARED)).toBe(
      "This agent keeps the id, and the server stores the other agent's data under an endpoint of its own, " +
        'so their charts do not mix.',
    );
  });

  it('uses the plural for several other agents', () => {
    expect(conflictDetails(threeAgents, SHARED)).toContain("the other agents' data under endpoints of their own");
  });

  it('names the owner and the separate endpoint of a split-off agent', () => {
    expect(conflictDetails(conflict(), SPLIT_B)).toBe(
      'The agent on clone-a keeps the id, so the server stores this agent\'s data under this separate endpoint, ' +
        `${SPLIT_B}, and their charts do not mix.`,
    );
  });

  it('falls back when the owner is missing', () => {
    const ownerless = conflict({ agents: conflict().agents.slice(1) });
    expect(conflictDetails(ownerless, SPLIT_B)).toMatch(/^Another agent keeps the id, /);
  });

  it('says when only one agent is present', () => {
    const details = conflictDetails(conflict({ active: false }), SHARED);
    expect(details.endsWith(' Only one of these agents is online or idle now.')).toBe(true);
    expect(conflictDetails(conflict(), SHARED)).not.toContain('Only one');
  });
});

describe('hintSentence', () => {
  it('capitalizes the hint and ends it with a period', () => {
    const sentence = hintSentence(HINT);
    expect(sentence.startsWith('If these are machines cloned')).toBe(true);
    expect(sentence.endsWith('stop one of them.')).toBe(true);
  });

  it('keeps a final punctuation mark', () => {
    expect(hintSentence('  restart the agent. ')).toBe('Restart the agent.');
    expect(hintSentence('check it!')).toBe('Check it!');
  });

  it('returns nothing for an empty hint', () => {
    expect(hintSentence('  ')).toBe('');
  });
});

describe('conflictMarkerTitle', () => {
  it('names the other agents', () => {
    expect(conflictMarkerTitle(threeAgents, SHARED)).toBe(
      `Shares endpoint id ${SHARED} with clone-b, ${SPLIT_C}. Open the endpoint to see how to fix it.`,
    );
  });

  it('says when only one agent is present', () => {
    expect(conflictMarkerTitle(conflict({ active: false }), SPLIT_B)).toBe(
      `Shares endpoint id ${SHARED} with clone-a. Open the endpoint to see how to fix it. ` +
        'Only one of them is online or idle now.',
    );
  });
});
