import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gosight.config import SETTINGS, ConfigError, describe_settings_markdown, load_config
from tests.support.processes import start_server

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "gosight", *args], capture_output=True, text=True, env=full_env,
                          timeout=60, cwd=REPO)


def test_every_setting_is_documented():
    doc = (REPO / "docs" / "configuration.md").read_text()

    undocumented = [s.name for s in SETTINGS if f"`{s.name}`" not in doc or s.env not in doc]
    short_help = [s.name for s in SETTINGS if len(s.help) < 20]

    assert undocumented == [], "run python build/gen_config_doc.py"
    assert short_help == []
    assert describe_settings_markdown() in doc, "docs/configuration.md is out of date; run python build/gen_config_doc.py"


def test_precedence_file_env_flag(tmp_path: Path):
    config_file = tmp_path / "gosight.yaml"
    config_file.write_text("agent:\n  server: file-host\n  interval_s: 5\n  heartbeat_s: 7\nlog:\n  level: debug\n")

    config = load_config(["agent"], config_path=config_file,
                         env={"GOSIGHT_AGENT_INTERVAL_S": "3", "GOSIGHT_AGENT_HEARTBEAT_S": "9"},
                         flags={"agent.interval_s": "2"})

    assert config["agent.server"] == "file-host:4317"
    assert config["agent.interval_s"] == 2.0
    assert config["agent.heartbeat_s"] == 9.0
    assert config["log.level"] == "debug"
    assert config["agent.backoff.max_s"] == 30.0
    assert config.sources["agent.interval_s"] == "--agent.interval_s"
    assert config.sources["agent.heartbeat_s"] == "GOSIGHT_AGENT_HEARTBEAT_S"
    assert config.sources["log.level"] == str(config_file)


def test_all_problems_reported_at_once(tmp_path: Path):
    config_file = tmp_path / "bad.yaml"
    config_file.write_text("server:\n  grpc:\n    listen: nowhere\n  presense: {}\nstore:\n  retention_days: -1\n")

    with pytest.raises(ConfigError) as caught:
        load_config(["server"], config_path=config_file, env={"GOSIGHT_LOG_FORMAT": "xml"},
                    flags={"server.http.listen": "127.0.0.1:99999"})

    problems = caught.value.problems
    assert len(problems) == 5, problems
    assert any(line.startswith("server.grpc.listen: invalid value 'nowhere'") and "host:port" in line
               for line in problems)
    assert any("server.presense: unknown setting" in line and "did you mean" in line for line in problems)
    assert any(line.startswith("store.retention_days: invalid value -1") and "at least" in line for line in problems)
    assert any(line.startswith("log.format: invalid value 'xml' from GOSIGHT_LOG_FORMAT") and "text, json" in line
               for line in problems)
    assert any(line.startswith("server.http.listen") and "65535" in line for line in problems)


@pytest.mark.parametrize("flags, expected", [
    ({"agent.labels": "job=x"}, "agent.labels: invalid label names job"),
    ({"agent.labels": "9bad=x"}, "label name '9bad' is invalid"),
    ({"agent.labels": "novalue"}, "expected name=value"),
    ({"agent.collectors": "cpu,gpu"}, "unknown name gpu"),
    ({"agent.interval_s": "0"}, "between 0.1 and 3600"),
    ({"agent.filesystem.exclude_fstypes": "("}, "expected a regular expression"),
    ({"agent.backoff.initial_s": "10", "agent.backoff.max_s": "1"}, "must be at least agent.backoff.initial_s"),
])
def test_invalid_agent_settings(flags, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(["agent"], env={}, flags={"agent.server": "h", **flags})

    assert any(expected in line for line in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("server, expected", [
    ("http://x:4317", "expected host:port without a scheme, for example 127.0.0.1:4317; drop 'http://'"),
    ("a b", "'a b' is not a host name or IP address"),
    ("bad_host!", "'bad_host!' is not a host name or IP address"),
    ("x:99999", "the port must be between 0 and 65535"),
])
def test_invalid_server_address(server, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(["agent"], env={}, flags={"agent.server": server})

    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("server, expected", [
    ("x", "x:4317"), ("10.0.0.5:99", "10.0.0.5:99"), ("::1", "[::1]:4317"), ("[::1]:5", "[::1]:5"),
    ("metrics.example.com.", "metrics.example.com.:4317"),
])
def test_valid_server_address(server, expected):
    assert load_config(["agent"], env={}, flags={"agent.server": server})["agent.server"] == expected


def test_cli_reports_invalid_settings_without_traceback(tmp_path: Path):
    result = run_cli("server", "--data-dir", str(tmp_path), "--server.presence.idle_after_s", "500",
                     env={"GOSIGHT_SERVER_INGEST_QUEUE_SAMPLES": "lots"})

    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert lines[0] == "gosight: invalid configuration:"
    assert any("server.ingest.queue_samples: invalid value 'lots' from GOSIGHT_SERVER_INGEST_QUEUE_SAMPLES" in line
               for line in lines)
    assert any("server.presence.offline_after_s" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_cli_agent_without_server():
    result = run_cli("agent")

    assert result.returncode == 2
    assert "agent.server: missing: pass --server HOST[:PORT]" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_missing_config_file(tmp_path: Path):
    result = run_cli("check-config", "--role", "server", "--config", str(tmp_path / "absent.yaml"))

    assert result.returncode == 2
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_version():
    result = run_cli("version")

    assert result.returncode == 0
    assert result.stdout.startswith("gosight 0.")


def test_cli_server_port_in_use(tmp_path: Path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("server", "--data-dir", str(tmp_path), "--http-listen", f"127.0.0.1:{port}",
                         "--grpc-listen", "127.0.0.1:0")

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "server.http.listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_server_grpc_port_of_running_server(tmp_path: Path):
    running = start_server(tmp_path / "first", tmp_path / "first.log")
    try:
        grpc_port = running.grpc.rsplit(":", 1)[1]
        result = run_cli("server", "--data-dir", str(tmp_path / "second"), "--http-listen", "127.0.0.1:0",
                         "--grpc-listen", f"127.0.0.1:{grpc_port}")
    finally:
        running.proc.stop()

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{grpc_port} for gRPC" in result.stderr
    assert "server.grpc.listen" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("damaged, expected", [
    ("meta.sqlite", "cannot open the metadata database"),
    ("metrics.duckdb", "cannot open the metric store"),
])
def test_cli_server_damaged_database(tmp_path: Path, damaged: str, expected: str):
    (tmp_path / damaged).write_bytes(b"not a database, just text that fills a few bytes" * 100)

    result = run_cli("server", "--data-dir", str(tmp_path), "--http-listen", "127.0.0.1:0",
                     "--grpc-listen", "127.0.0.1:0")

    assert result.returncode == 1
    assert expected in result.stderr
    assert "restore it from a backup" in result.stderr
    assert "another gosight server" not in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_user_list_needs_server_data(tmp_path: Path):
    empty = run_cli("user", "list", "--data-dir", str(tmp_path))
    (tmp_path / "demo" / "server").mkdir(parents=True)
    (tmp_path / "demo" / "server" / "meta.sqlite").touch()
    demo = run_cli("user", "list", "--data-dir", str(tmp_path / "demo"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "meta.sqlite").mkdir()
    broken = run_cli("user", "list", "--data-dir", str(tmp_path / "broken"))

    assert empty.returncode == 1
    assert "holds no server data (no meta.sqlite)" in empty.stderr
    assert not (tmp_path / "meta.sqlite").exists(), "a read command creates no database"
    assert demo.returncode == 1
    assert f"pass --data-dir {tmp_path / 'demo' / 'server'}" in demo.stderr
    assert broken.returncode == 1
    assert "cannot use the database of the data directory" in broken.stderr
    assert "Traceback" not in empty.stderr + demo.stderr + broken.stderr


def test_cli_output_into_closed_pipe():
    with subprocess.Popen([sys.executable, "-m", "gosight", "check-config", "--list"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as reader:
        reader.stdout.readline()
        reader.stdout.close()
        stderr = reader.stderr.read().decode()
        reader.wait(30)

    assert reader.returncode == 0
    assert "Traceback" not in stderr


def test_unknown_environment_variable_is_named():
    config = load_config(["server"], env={"GOSIGHT_SERVER_HTTPLISTEN": "127.0.0.1:1", "GOSIGHT_LOG_LEVEL": "debug"})

    assert config.warnings == ["ignoring the environment variable GOSIGHT_SERVER_HTTPLISTEN: no setting reads it; "
                               "did you mean GOSIGHT_SERVER_HTTP_LISTEN?"]
    assert config["log.level"] == "debug"


def test_cli_check_config_shows_environment_warning():
    result = run_cli("check-config", "--role", "server", env={"GOSIGHT_SERVER_HTTPLISTEN": "127.0.0.1:1"})

    assert result.returncode == 0
    assert "warning: ignoring the environment variable GOSIGHT_SERVER_HTTPLISTEN" in result.stdout


@pytest.mark.parametrize("raw, expected", [("", "expected a directory path"), ("  ", "expected a directory path")])
def test_empty_data_dir_is_refused(raw, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(["server"], env={"GOSIGHT_DATA_DIR": raw})

    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_relative_data_dir_becomes_absolute(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    config = load_config(["server"], env={}, flags={"data_dir": "state"})

    assert config["data_dir"] == str(tmp_path / "state")


def test_server_files_are_private(tmp_path: Path):
    data_dir = tmp_path / "shared"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "old-notes.txt").write_text("from an older version")
    (data_dir / "old-notes.txt").chmod(0o644)

    running = start_server(data_dir, tmp_path / "server.log", bootstrap=False)
    try:
        record = running.proc.wait_for_log("made data files readable by their owner only; they were open to "
                                           "other users")
    finally:
        running.proc.stop()
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data_dir.iterdir() if path.is_file()}

    assert record["files"] == ["old-notes.txt"]
    assert "meta.sqlite" in modes
    assert "metrics.duckdb" in modes
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes


def test_duplicate_yaml_key_is_refused(tmp_path: Path):
    path = tmp_path / "gosight.yaml"
    path.write_text("server:\n  http:\n    listen: 127.0.0.1:1\n    listen: 127.0.0.1:2\n")

    with pytest.raises(ConfigError) as caught:
        load_config(["server"], env={}, config_path=path)

    assert caught.value.problems == [f"config file {path}: invalid YAML at line 4, column 5: the key 'listen' "
                                     "appears twice; keep one"]


def test_empty_yaml_section_is_accepted(tmp_path: Path):
    path = tmp_path / "gosight.yaml"
    path.write_text("server:\nlog:\n  level: debug\n")

    config = load_config(["server"], env={}, config_path=path)

    assert config["log.level"] == "debug"


def test_integer_bounds_are_printed_in_full():
    with pytest.raises(ConfigError) as caught:
        load_config(["server"], env={}, flags={"server.ingest.max_message_bytes": "99999999999"})

    assert caught.value.problems[0].endswith("expected an integer between 1024 and 1073741824")


def test_cli_check_config_for_a_server_alone():
    result = run_cli("check-config")

    assert result.returncode == 0
    assert "note: agent settings not checked: agent.server is not set" in result.stdout
