"""What `make run` does, step by step, against a real server process on a real port."""

from __future__ import annotations

import json
from pathlib import Path

from tests.processes import Cli, free_port, http_get, server


def test_make_run_path_serves_health_docs_and_the_demo(tmp_path: Path) -> None:
    cli = Cli(tmp_path, None)
    cli.run("db", "upgrade")
    loaded = cli.json("demo", "load", "--scale", "tiny", "--if-empty")
    assert loaded["loaded"] is True
    keys = json.loads((tmp_path / "var" / "demo-keys.json").read_text())
    assert (tmp_path / "var" / "demo-keys.json").stat().st_mode & 0o077 == 0
    first = loaded["merchants"][0]
    with server(cli) as base:
        status, body = http_get(base + "/healthz")
        assert status == 200
        assert json.loads(body)["database"] == "sqlite"
        assert http_get(base + "/docs")[0] == 200
        status, body = http_get(base + "/api/v1/stores?limit=500",
                                {"Authorization": f"Bearer {keys[first['slug']]['admin']}"})
        assert status == 200
        assert json.loads(body)["total"] == first["stores"] > 0
        status, body = http_get(base + "/api/v1/products?limit=1",
                                {"Authorization": f"Bearer {keys[first['slug']]['admin']}"})
        assert json.loads(body)["total"] == first["products"] > 0
    # Loading again on a non-empty database is a no-op, as `make run` relies on.
    assert cli.json("demo", "load", "--scale", "tiny", "--if-empty")["loaded"] is False



def test_serving_a_database_that_is_not_there_says_so_in_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path, f"postgresql+psycopg://lianjie@127.0.0.1:{free_port()}/lianjie")
    result = cli.run("serve", "--port", str(free_port()), ok=False)
    assert result.returncode == 1
    assert "cannot use the database" in result.stderr
    assert "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "─" not in result.stderr, result.stderr  # nor a framed traceback
