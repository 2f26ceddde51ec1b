"""The gosight command: server, agent, demo, version, check-config, certs, token and user."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence

from gosight import __version__
from gosight.config import (
    AGENT,
    BY_NAME,
    SERVER,
    Config,
    ConfigError,
    describe_settings_markdown,
    load_config,
    settings_for,
)
from gosight.logconfig import configure_logging
from gosight.auth import commands as user_commands
from gosight.security import commands as security_commands

log = logging.getLogger("gosight.cli")

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gosight",
        description="GoSight: host and container metrics, a PromQL store and a web dashboard in one file.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    server = commands.add_parser("server", help="run the server: store, APIs and dashboard")
    _add_setting_flags(server, [SERVER])
    agent = commands.add_parser("agent", help="run the agent: collect host metrics and send them to a server")
    _add_setting_flags(agent, [AGENT])
    demo = commands.add_parser("demo", help="run a server and a local agent in one process, for a first look")
    _add_setting_flags(demo, [SERVER, AGENT])
    commands.add_parser("version", help="print the version and exit")
    security_commands.add_parsers(commands)
    user_commands.add_parser(commands)

    check = commands.add_parser("check-config", help="validate settings from the file, environment and flags")
    check.add_argument("--role", choices=[SERVER, AGENT, "all"], default="all",
                       help="which command's settings to validate (default: all)")
    check.add_argument("--list", action="store_true", help="list every setting with its default and exit")
    check.add_argument("--markdown", action="store_true", help="print the settings reference as Markdown")
    _add_setting_flags(check, [SERVER, AGENT])
    return parser


def _add_setting_flags(parser: argparse.ArgumentParser, roles: list[str]) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML settings file (default: $GOSIGHT_CONFIG)")
    group = parser.add_argument_group("settings", "every setting, also readable from the file and GOSIGHT_* "
                                                  "environment variables")
    for setting in settings_for(roles):
        names = [setting.flag] + ([setting.alias] if setting.alias else [])
        unit = f" [{setting.unit}]" if setting.unit else ""
        group.add_argument(*names, dest=setting.name, metavar=setting.type_name.upper().replace(":", "_"),
                           default=None, help=f"{setting.help}{unit} (env {setting.env})")


def _flags(args: argparse.Namespace, roles: list[str]) -> dict[str, str]:
    return {setting.name: getattr(args, setting.name) for setting in settings_for(roles)
            if getattr(args, setting.name, None) is not None}


def _load(args: argparse.Namespace, roles: list[str]) -> Config:
    return load_config(roles, flags=_flags(args, roles), config_path=args.config)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Everything GoSight writes (password hashes, keys, metrics) is for its own user only,
    # even in a data directory that others may list.
    os.umask(0o077)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "server": _run_server,
        "agent": _run_agent,
        "demo": _run_demo,
        "version": _print_version,
        "check-config": _check_config,
        "certs": security_commands.run_certs,
        "token": security_commands.run_token,
        "user": user_commands.run_user,
    }
    try:
        status = handlers[args.command](args)
        # Flush here, not at exit, so a reader that went away is handled below.
        sys.stdout.flush()
        return status
    except ConfigError as error:
        print("gosight: invalid configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away, as `| head` does: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except sqlite3.Error as error:
        print(f"gosight: {args.command}: cannot use the database of the data directory: {error}. Run the command "
              "as the user the server runs as, with the server's --data-dir; a damaged meta.sqlite must be "
              "restored from a backup", file=sys.stderr)
        return EXIT_FAILURE


def _start_logging(config: Config) -> None:
    configure_logging(config["log.level"], config["log.format"])
    for warning in config.warnings:
        log.warning(warning)


def _print_version(args: argparse.Namespace) -> int:
    print(f"gosight {__version__} (python {sys.version.split()[0]})")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(describe_settings_markdown())
        return 0
    roles = [SERVER, AGENT] if args.role == "all" else [args.role]
    if args.list:
        for setting in settings_for(roles):
            default = "(required)" if setting.default is None and setting.name == "agent.server" else setting.default
            print(f"{setting.name} = {default!r}  [{setting.env}]  {setting.help}")
        return 0
    problems: list[str] = []
    configs = []
    notes = []
    for role in roles:
        try:
            configs.append(_load(args, [role]))
        except ConfigError as error:
            if args.role == "all" and role == AGENT and all(line.startswith("agent.server: missing")
                                                           for line in error.problems):
                # A server's configuration need not name a server to send to.
                notes.append("agent settings not checked: agent.server is not set (an agent needs it)")
                continue
            problems.extend(line for line in error.problems if line not in problems)
    if problems:
        raise ConfigError(problems)
    print("configuration is valid")
    for note in notes:
        print(f"  note: {note}")
    for warning in configs[0].warnings if configs else []:
        print(f"  warning: {warning}")
    for config in configs:
        for name, value in sorted(config.values.items()):
            shown = "(hidden)" if BY_NAME[name].secret and value else repr(value)
            print(f"  {name} = {shown}  ({config.sources.get(name, 'default')})")
    return 0


def _run_server(args: argparse.Namespace) -> int:
    from gosight.server.main import StartupError, serve

    config = _load(args, [SERVER])
    _start_logging(config)
    try:
        asyncio.run(serve(config))
    except StartupError as error:
        log.error("server cannot start: %s", error)
        return EXIT_FAILURE
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from gosight.demo import run_demo
    from gosight.server.main import StartupError

    flags = _flags(args, [SERVER, AGENT])
    # The demo's agent talks to the demo's own server, on a gRPC port picked at start.
    flags.setdefault("agent.server", "127.0.0.1:0")
    flags.setdefault("server.grpc.listen", "127.0.0.1:0")
    config = load_config([SERVER, AGENT], flags=flags, config_path=args.config)
    if config.sources["data_dir"] == "default":
        config.values["data_dir"] = str(config.data_dir / "demo")
    _start_logging(config)
    try:
        asyncio.run(run_demo(config))
    except StartupError as error:
        log.error("demo cannot start: %s", error)
        return EXIT_FAILURE
    return 0


def _run_agent(args: argparse.Namespace) -> int:
    from gosight.agent.runner import AgentStartupError, run_agent
    from gosight.security.client_tls import AgentSecurityError

    config = _load(args, [AGENT])
    _start_logging(config)
    try:
        return run_agent(config)
    except (AgentStartupError, AgentSecurityError) as error:
        log.error("agent cannot start: %s", error)
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
