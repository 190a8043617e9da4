"""The container image definition stays consistent with the CLI and the node's health endpoint
(no container engine runs here, so it is checked structurally)."""

from pathlib import Path

from click.testing import CliRunner

from mpc_nodes.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_matches_cli_and_health_endpoint():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["mpcnet"]' in text
    assert "USER mpcnet" in text and 'VOLUME ["/data"]' in text
    assert 'CMD ["node", "--config", "/data/node.yaml"]' in text
    assert "/healthz" in text and "EXPOSE 9464" in text
    for package in ("mpc_nodes", "protocols", "keyshare"):
        assert f"COPY {package} ./{package}" in text
    result = CliRunner().invoke(main, ["node", "--help"])
    assert result.exit_code == 0 and "--config" in result.output
