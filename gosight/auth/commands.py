"""`gosight user`: manage web users from the server's shell, also while the server runs.

Passwords are read from a prompt (twice, without echo) or, with --password-stdin,
from the first line of standard input. They are never taken from the command line,
because other users can read it in the process list. API tokens are printed once, on
stdout.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from gosight.config import SERVER, load_config, server_data_problem

EXIT_FAILURE = 1


def add_parser(commands: argparse._SubParsersAction) -> None:
    user_parser = commands.add_parser("user", help="manage web users, their roles, passwords, MFA and API tokens")
    user_commands = user_parser.add_subparsers(dest="user_command", metavar="COMMAND")
    user_commands.required = True

    add = user_commands.add_parser("add", help="create a user with a password")
    add.add_argument("name", help="user name")
    role = add.add_mutually_exclusive_group()
    role.add_argument("--admin", action="store_true", help="give the user the admin role")
    role.add_argument("--role", default="viewer", help="role name: admin, editor, viewer or a custom role "
                                                       "(default: viewer)")
    add.add_argument("--email", help="email address, to link the account at its first single sign-on")
    _password_source(add)
    user_commands.add_parser("list", help="list users with their role, status and MFA")
    set_password = user_commands.add_parser("set-password", help="set a user's password and end their sessions")
    set_password.add_argument("name")
    _password_source(set_password)
    set_role = user_commands.add_parser("set-role", help="change a user's role")
    set_role.add_argument("name")
    set_role.add_argument("role")
    disable = user_commands.add_parser("disable", help="disable a user and end their sessions")
    disable.add_argument("name")
    enable = user_commands.add_parser("enable", help="enable a disabled user")
    enable.add_argument("name")
    reset_mfa = user_commands.add_parser("reset-mfa", help="turn off a user's MFA and end their sessions")
    reset_mfa.add_argument("name")
    delete = user_commands.add_parser("delete", help="delete a user with their sessions and API tokens")
    delete.add_argument("name")
    token = user_commands.add_parser("token", help="create an API token for a user; it is printed once, on stdout")
    token.add_argument("name", help="user name of the token's owner")
    token.add_argument("--token-name", default="cli", help="a name to recognise the token by, such as grafana "
                       "(default: cli)")
    token.add_argument("--permission", action="append", default=[], metavar="PERMISSION",
                       help="permission the token carries (repeatable); default: every permission of the user's role")
    token.add_argument("--expires", default="90d", metavar="DURATION", help="lifetime such as 90d (default: 90d)")
    for parser in user_commands.choices.values():
        parser.add_argument("--config", metavar="FILE", help="YAML settings file (default: $GOSIGHT_CONFIG)")
        parser.add_argument("--data-dir", dest="data_dir", help="the server's data directory (default: data_dir)")


def run_user(args: argparse.Namespace) -> int:
    from gosight.auth.store import AuthStore, Conflict, NotFound

    flags = {"data_dir": args.data_dir} if args.data_dir else {}
    config = load_config([SERVER], flags=flags, config_path=args.config)
    problem = server_data_problem(config.data_dir, creating=args.user_command == "add")
    if problem:
        return _fail(problem)
    store = AuthStore(config.data_dir) if args.user_command != "add" else None
    try:
        if store is None:
            config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            store = AuthStore(config.data_dir)
        handler = _HANDLERS[args.user_command]
        return handler(args, store, config)
    except (NotFound, Conflict, ValueError) as error:
        return _fail(str(error))
    finally:
        if store is not None:
            store.close()


def _add(args, store, config) -> int:
    from gosight.auth import passwords, rbac

    role = rbac.ADMIN if args.admin else args.role
    password = _read_new_password(args, config["server.auth.password_min_length"], args.name)
    user = store.create_user(args.name, passwords.hash_password(password), role, args.email)
    store.record_event("user_created", user=user, actor="cli", role=role)
    print(f"created user {user.username} with role {user.role}")
    return 0


def _list(args, store, config) -> int:
    from gosight.security.commands import _date_ms, _print_table

    rows = [("NAME", "ROLE", "STATUS", "MFA", "EMAIL", "LAST LOGIN")]
    for user in store.list_users():
        rows.append((user.username, user.role, "disabled" if user.disabled else "active",
                     "on" if user.mfa_enabled else "off", user.email or "-",
                     _date_ms(user.last_login_ms) if user.last_login_ms else "never"))
    _print_table(rows)
    return 0


def _set_password(args, store, config) -> int:
    from gosight.auth import passwords

    user = store.require_user(args.name)
    password = _read_new_password(args, config["server.auth.password_min_length"], user.username)
    store.set_password_hash(user.user_id, passwords.hash_password(password))
    ended = store.end_user_sessions(user.user_id)
    store.record_event("password_reset", user=user, actor="cli", sessions_ended=ended)
    print(f"set the password of {user.username}; ended {ended} session(s)")
    return 0


def _set_role(args, store, config) -> int:
    user = store.require_user(args.name)
    changed = store.set_role(user.user_id, args.role)
    store.record_event("role_changed", user=user, actor="cli", old_role=user.role, new_role=changed.role)
    print(f"{user.username} now has the role {changed.role} (was {user.role})")
    return 0


def _disable(args, store, config) -> int:
    user = store.require_user(args.name)
    store.set_disabled(user.user_id, True)
    store.record_event("user_disabled", user=user, actor="cli")
    print(f"disabled {user.username} and ended their sessions; their API tokens stop working too")
    return 0


def _enable(args, store, config) -> int:
    user = store.require_user(args.name)
    store.set_disabled(user.user_id, False)
    store.record_event("user_enabled", user=user, actor="cli")
    print(f"enabled {user.username}")
    return 0


def _reset_mfa(args, store, config) -> int:
    user = store.require_user(args.name)
    store.reset_mfa(user.user_id)
    ended = store.end_user_sessions(user.user_id)
    store.record_event("mfa_reset", user=user, actor="cli", sessions_ended=ended)
    print(f"turned off MFA for {user.username} and ended {ended} session(s); they can enrol again after signing in")
    return 0


def _delete(args, store, config) -> int:
    user = store.require_user(args.name)
    store.delete_user(user.user_id)
    store.record_event("user_deleted", user=user, actor="cli")
    print(f"deleted {user.username} with their sessions and API tokens")
    return 0


def _token(args, store, config) -> int:
    from gosight.auth import rbac
    from gosight.auth.store import MAX_TOKEN_LIFETIME_S, now_ms
    from gosight.security.tokens import parse_duration_s

    user = store.require_user(args.name)
    granted = store.role_permissions(user.role) - rbac.IMPLICIT
    wanted = frozenset(args.permission) if args.permission else granted
    beyond = sorted(wanted - granted)
    if beyond:
        return _fail(f"the role {user.role!r} of {user.username} does not grant {', '.join(beyond)}")
    seconds = parse_duration_s(args.expires)
    if seconds is None or seconds > MAX_TOKEN_LIFETIME_S:
        return _fail(f"invalid --expires {args.expires!r}: API tokens need an expiry of at most 3 years, such as 90d")
    token, record = store.create_token(user.user_id, args.token_name, wanted, now_ms() + int(seconds * 1000))
    store.record_event("token_created", user=user, actor="cli", token_id=record.token_id,
                       permissions=sorted(record.permissions))
    print(f"created API token {record.token_id} for {user.username} ({', '.join(sorted(record.permissions))}); "
          "it is shown once, below", file=sys.stderr)
    print(token)
    return 0


_HANDLERS = {"add": _add, "list": _list, "set-password": _set_password, "set-role": _set_role, "disable": _disable,
             "enable": _enable, "reset-mfa": _reset_mfa, "delete": _delete, "token": _token}


def _password_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input instead of a prompt")


def _read_new_password(args: argparse.Namespace, min_length: int, username: str) -> str:
    from gosight.auth import passwords

    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise ValueError("the two passwords differ; nothing was changed")
    passwords.check_policy(password, min_length, username)
    return password


def _fail(message: str) -> int:
    print(f"gosight: {message}", file=sys.stderr)
    return EXIT_FAILURE
