"""`gosight certs` and `gosight token`: the built-in CA and agent tokens, from the command line.

Both work while the server runs: certificates live in files the server re-reads (the
revocation list) or reads at start, and tokens in the SQLite metadata database.
Results go to stdout; errors go to stderr as one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import datetime
import sys

from typing import TYPE_CHECKING

from gosight.config import SERVER, Config, load_config, number, server_data_problem

# The modules behind these commands import cryptography and grpc. They are imported when a certs or token
# command runs, so other gosight commands do not pay for them at start.
if TYPE_CHECKING:
    from gosight.security.authority import Authority
    from gosight.security.tokens import TokenStore

EXIT_FAILURE = 1


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Add the `certs` and `token` command groups to the gosight parser."""
    certs_parser = commands.add_parser("certs", help="manage the built-in certificate authority for TLS")
    certs_commands = certs_parser.add_subparsers(dest="certs_command", metavar="COMMAND")
    certs_commands.required = True

    init = certs_commands.add_parser("init", help="create the CA and the server certificate")
    init.add_argument("--host", action="append", default=[], metavar="NAME_OR_IP",
                      help="another host name or IP address for the server certificate (repeatable); this host's "
                           "names, loopback and server.tls.cert_hosts are always included")
    init.add_argument("--ca-days", type=_days, help="validity of a new CA in days (default: "
                                                    "server.tls.ca_validity_days, 3650)")
    init.add_argument("--days", type=_days, help="validity of the server certificate in days (default: "
                                                 "server.tls.cert_validity_days, 825)")
    init.add_argument("--force", action="store_true",
                      help="replace an existing server certificate; an existing CA is always kept")
    issue = certs_commands.add_parser("issue", help="create a client certificate for an agent, signed by the CA")
    issue.add_argument("name", help="agent name, used as the certificate's common name and file name")
    issue.add_argument("--days", type=_days, help="validity in days (default: server.tls.cert_validity_days, 825)")
    issue.add_argument("--force", action="store_true", help="replace an existing certificate of that name")
    revoke = certs_commands.add_parser("revoke",
                                       help="revoke a client certificate; the server rejects it from its next call")
    revoke.add_argument("certificate", metavar="NAME|SERIAL", help="certificate name, or serial number in hex")
    certs_commands.add_parser("list", help="list client certificates with their serial, expiry and status")
    certs_commands.add_parser("fingerprint", help="print the CA's SHA-256 fingerprint, for agent.tls.ca_fingerprint")
    for parser in certs_commands.choices.values():
        _add_common(parser)
        parser.add_argument("--dir", help="TLS directory (default: server.tls.dir, or tls in the data directory)")

    token_parser = commands.add_parser("token", help="manage agent tokens")
    token_commands = token_parser.add_subparsers(dest="token_command", metavar="COMMAND")
    token_commands.required = True
    create = token_commands.add_parser("create", help="create a token; it is printed once, on stdout")
    create.add_argument("--name", default="", help="a name to recognise the token by, such as the agent's host")
    create.add_argument("--expires", default="never", metavar="DURATION",
                        help="lifetime such as 30d, 12h or 90m (default: never)")
    create.add_argument("--bind-agent", action="store_true",
                        help="bind the token to the first agent id that uses it; other agents are then rejected")
    token_commands.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke_token = token_commands.add_parser("revoke",
                                             help="revoke a token; the server rejects it from its next call")
    revoke_token.add_argument("token_id", metavar="ID", help="token id, as 'gosight token list' shows it")
    for parser in token_commands.choices.values():
        _add_common(parser)


def run_certs(args: argparse.Namespace) -> int:
    from gosight.security.authority import Authority
    from gosight.security.certs import CertificateError
    from gosight.security.server_tls import tls_dir

    config = _load(args, {"server.tls.dir": getattr(args, "dir", None)})
    authority = Authority(tls_dir(config))
    handlers = {"init": _certs_init, "issue": _certs_issue, "revoke": _certs_revoke, "list": _certs_list,
                "fingerprint": _certs_fingerprint}
    try:
        return handlers[args.certs_command](args, config, authority)
    except FileExistsError as error:
        return _fail(f"{error.args[0]} already exists; pass --force to replace it")
    except (CertificateError, ValueError) as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot write in {authority.directory}: {error.strerror or error}")


def run_token(args: argparse.Namespace) -> int:
    from gosight.security.tokens import TokenStore

    config = _load(args, {})
    path = config.data_dir / "meta.sqlite"
    # Agent tokens may be made before the server's first start, ready for the agents.
    problem = server_data_problem(config.data_dir, creating=args.token_command == "create")
    if problem:
        return _fail(problem)
    if args.token_command == "create":
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tokens = TokenStore(path)
    try:
        if args.token_command == "create":
            return _token_create(args, tokens)
        if args.token_command == "list":
            return _token_list(tokens)
        return _token_revoke(args, tokens)
    except ValueError as error:
        return _fail(str(error))
    finally:
        tokens.close()


def _certs_init(args: argparse.Namespace, config: Config, authority: Authority) -> int:
    from gosight.security import certs
    from gosight.security.server_tls import server_cert_hosts

    hosts = server_cert_hosts(config) + list(args.host)
    created_ca = authority.init(hosts, args.ca_days or config["server.tls.ca_validity_days"],
                                args.days or config["server.tls.cert_validity_days"], force=args.force)
    ca = authority.load_ca_cert()
    print(f"{'created' if created_ca else 'kept the existing'} certificate authority: {authority.ca_cert_path}")
    print(f"created the server certificate: {authority.server_cert_path} (key {authority.server_key_path})")
    print(f"server certificate names: {', '.join(dict.fromkeys(hosts))}")
    print(f"CA fingerprint: {certs.fingerprint(ca)}")
    return 0


def _certs_issue(args: argparse.Namespace, config: Config, authority: Authority) -> int:
    issued = authority.issue(args.name, args.days or config["server.tls.cert_validity_days"], force=args.force)
    print(f"issued {issued.name}: serial {issued.serial}, valid until {_date(issued.cert.not_valid_after_utc)}")
    print(f"  certificate: {issued.cert_path}")
    print(f"  key:         {issued.key_path}")
    print(f"copy both and {authority.ca_cert_path} to the agent, then set agent.tls.ca_file, agent.tls.cert_file "
          "and agent.tls.key_file")
    return 0


def _certs_revoke(args: argparse.Namespace, config: Config, authority: Authority) -> int:
    from gosight.security import certs

    revocation = authority.revoke(args.certificate)
    label = certs.format_serial(revocation.serial) + (f" ({revocation.name})" if revocation.name else "")
    if revocation.already_revoked:
        print(f"certificate {label} was already revoked")
    else:
        print(f"revoked certificate {label}; {authority.crl_path} updated, and the server rejects it from its "
              "next call")
    return 0


def _certs_list(args: argparse.Namespace, config: Config, authority: Authority) -> int:
    revoked = authority.revoked()
    now = datetime.datetime.now(datetime.timezone.utc)
    rows = [("NAME", "SERIAL", "NOT AFTER", "STATUS")]
    for issued in authority.issued():
        cert = issued.cert
        if cert.serial_number in revoked:
            status = "revoked"
        elif cert.not_valid_after_utc <= now:
            status = "expired"
        else:
            status = "valid"
        rows.append((issued.name, issued.serial, _date(cert.not_valid_after_utc), status))
    _print_table(rows)
    return 0


def _certs_fingerprint(args: argparse.Namespace, config: Config, authority: Authority) -> int:
    from gosight.security import certs

    if not authority.has_ca():
        return _fail(f"no certificate authority in {authority.directory}; run 'gosight certs init', or start the "
                     "server with server.tls.enabled true")
    print(certs.fingerprint(authority.load_ca_cert()))
    return 0


def _token_create(args: argparse.Namespace, tokens: TokenStore) -> int:
    from gosight.security.tokens import parse_duration_s

    token, record = tokens.create(args.name, parse_duration_s(args.expires), args.bind_agent)
    expires = _date_ms(record.expires_ms) if record.expires_ms else "never"
    binding = ", bound to the first agent that uses it" if record.bind_agent else ""
    print(f"created token {record.token_id} (name {record.name or '-'}, expires {expires}{binding}); it is shown "
          "once, below: save it in the agent's agent.token_file", file=sys.stderr)
    print(token)
    return 0


def _token_list(tokens: TokenStore) -> int:
    from gosight.security.tokens import now_ms

    now = now_ms()
    rows = [("ID", "NAME", "STATUS", "CREATED", "EXPIRES", "LAST USED", "AGENT")]
    for record in tokens.list():
        agent = record.agent_id or ("(first to use it)" if record.bind_agent else "any")
        rows.append((record.token_id, record.name or "-", record.status(now), _date_ms(record.created_ms),
                     _date_ms(record.expires_ms) if record.expires_ms else "never",
                     _date_ms(record.last_used_ms) if record.last_used_ms else "never", agent))
    _print_table(rows)
    return 0


def _token_revoke(args: argparse.Namespace, tokens: TokenStore) -> int:
    from gosight.security.tokens import TokenNotFound

    try:
        record = tokens.revoke(args.token_id)
    except TokenNotFound:
        return _fail(f"no token with id {args.token_id!r}; 'gosight token list' shows the ids")
    print(f"revoked token {record.token_id} (name {record.name or '-'}); the server rejects it from its next call")
    return 0


def _days(text: str) -> float:
    """Parse a validity in days with the bounds of the matching settings, so no certificate is born expired."""
    try:
        return number(1, 36500)(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"invalid validity {text!r}: {error}") from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML settings file (default: $GOSIGHT_CONFIG)")
    parser.add_argument("--data-dir", dest="data_dir", help="the server's data directory (default: data_dir)")


def _load(args: argparse.Namespace, extra: dict[str, str | None]) -> Config:
    flags = {"data_dir": args.data_dir, **extra}
    return load_config([SERVER], flags={name: value for name, value in flags.items() if value is not None},
                       config_path=args.config)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _date_ms(ms: int) -> str:
    return _date(datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc))


def _fail(message: str) -> int:
    print(f"gosight: {message}", file=sys.stderr)
    return EXIT_FAILURE
