"""Names of the gRPC metadata and HTTP headers that carry an agent's credentials.

Kept apart from the server's guard so the agent can import them without loading the
server side or the cryptography package.
"""

AUTHORIZATION_HEADER = "authorization"
# The agent's id on every call, so a token bound to one agent cannot serve another.
AGENT_ID_HEADER = "gosight-agent-id"
