"""Transport security: a built-in certificate authority, TLS credentials, agent tokens.

One module per concept:

- `certs` creates and reads X.509 material;
- `authority` manages the TLS directory that `gosight certs` and the server share;
- `revocation` reads the certificate revocation list;
- `tokens` stores agent tokens, and `guard` authenticates calls on the server;
- `server_tls` and `client_tls` build the credentials of each side;
- `commands` and `api` are the CLI and REST front ends.
"""
