"""The container image definition stays consistent with the CLI and the node's health endpoint
(checked structurally; tests/test_containers.py builds and runs it where an engine answers)."""

from pathlib import Path

from click.testing import CliRunner

from mpc_nodes.cli.app import main

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_matches_cli_and_health_endpoint():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["mpcnet"]' in text
    assert "USER mpcnet" in text and 'VOLUME ["/data"]' in text
    assert 'CMD ["node", "--config", "/data/node.yaml"]' in text
    assert "/healthz" in text and "EXPOSE 9464" in text
    # built offline from a wheelhouse on a base image given as an ARG, with no compiler
    assert "ARG BASE_IMAGE" in text and "FROM ${BASE_IMAGE}" in text
    assert "pip install --no-index" in text
    assert not any(word in text for word in ("gcc", "build-essential", "apt-get"))
    result = CliRunner().invoke(main, ["node", "--help"])
    assert result.exit_code == 0 and "--config" in result.output
