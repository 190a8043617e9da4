"""The CLI as a thin layer: `mpcnet --help` without importing any command (nor eth-account,
numpy, MPyC), one table of commands that says what each one does, exit statuses that tell a
user error from a failed job from a bug, and messages printed literally."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from mpc_nodes.cli.app import COMMANDS, main
from mpc_nodes.cli.common import exits, fail
from mpc_nodes.errors import JobFailed, UsageError
from tests.cluster_harness import _env

HEAVY = ("eth_account", "numpy", "mpyc", "pydantic", "mpc_nodes.client.coordinator",
         "mpc_nodes.jobs.registry", "mpc_nodes.config")


def test_importing_the_cli_imports_no_heavy_module():
    probe = ("import sys, mpc_nodes.cli.app\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, env=_env())
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_help_lists_every_command():
    run = subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", "--help"],
                         capture_output=True, text=True, timeout=60, env=_env())
    assert run.returncode == 0, run.stderr
    listed = {line.split()[0] for line in run.stdout.split("Commands:")[1].splitlines()
              if line.startswith("  ") and not line.startswith("   ")}
    assert listed == {name for name, (_, text) in COMMANDS.items() if text}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_table_names_each_command_and_says_what_its_help_says(name):
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Command) and command.name == name
    _, text = COMMANDS[name]
    assert command.hidden == (not text)
    assert " ".join(command.help.split()).startswith(text.rstrip(".")), (name, command.help)


def test_exit_statuses_tell_a_user_error_from_a_failed_job_from_a_bug():
    from mpc_nodes.client.coordinator import JobOutcome
    with pytest.raises(SystemExit) as user:
        with exits():
            raise UsageError("bad input")
    assert user.value.code == 2
    with pytest.raises(SystemExit) as failed:
        with exits():
            raise JobFailed(JobOutcome("0" * 32, "aggregate", {}, ok=False, error="refused"))
    assert failed.value.code == 1
    with pytest.raises(ValueError, match="a bug"):  # not a usage error: a traceback, exit 1
        with exits():
            raise ValueError("a bug")


def test_a_bug_in_a_command_is_not_reported_as_a_usage_error(tmp_path, monkeypatch):
    from mpc_nodes.client.api import Client
    from mpc_nodes.deploy.cluster import init_cluster
    init_cluster(tmp_path / "c", 3, 1)

    async def connected(self):
        return self

    async def broken(self, wait=1.5):
        raise ValueError("an internal invariant broke")
    monkeypatch.setattr(Client, "__aenter__", connected)
    monkeypatch.setattr(Client, "status", broken)
    run = CliRunner().invoke(main, ["status", "--dir", str(tmp_path / "c")])
    assert run.exit_code == 1 and isinstance(run.exception, ValueError)
    assert "error:" not in run.output


PATTERN_MESSAGE = "key_id: String should match pattern '^[a-z0-9][a-z0-9-]{2,63}$'"


def test_a_bracketed_message_prints_literally(capsys):
    with pytest.raises(SystemExit):
        fail(PATTERN_MESSAGE)
    assert f"error: {PATTERN_MESSAGE}" in capsys.readouterr().err


def test_a_config_error_with_a_pattern_reaches_the_terminal_whole(tmp_path):
    from mpc_nodes.deploy.cluster import init_cluster
    init_cluster(tmp_path / "c", 3, 1)
    config = tmp_path / "c" / "party0" / "node.yaml"
    config.write_text(config.read_text().replace("party: party0", "party: Party 0"))
    run = subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", "keys", "list", "--config",
                          str(config)], capture_output=True, text=True, timeout=60, env=_env())
    assert run.returncode == 2
    assert "party: String should match pattern '^[a-z][a-z0-9-]{0,31}$'" in run.stderr, run.stderr
