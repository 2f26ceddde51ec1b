"""Web users: accounts, sessions, API tokens, TOTP, single sign-on and role-based access control."""
