"""The CLI as a script would drive it: real processes, from a fresh directory, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from lianjie.db import create_db_engine
from lianjie.identity.models import Merge
from lianjie.tenants.models import Merchant
from tests.processes import Cli


@pytest.fixture
def cli(tmp_path: Path, database_url: str | None) -> Cli:
    workdir = tmp_path / "somewhere-else"
    workdir.mkdir()
    return Cli(workdir, database_url)


def test_a_script_sets_up_a_merchant(cli: Cli, database_url: str | None) -> None:
    cli.run("db", "upgrade")
    if database_url is None:
        assert (cli.cwd / "var" / "lianjie.db").exists()  # embedded database under ./var of the cwd
    merchant = cli.json("tenant", "create", "--slug", "huamei", "--name", "华美生活")
    assert merchant["slug"] == "huamei"
    assert merchant["currency"] == "CNY"
    assert merchant["created"]
    assert cli.json("tenant", "create", "--slug", "huamei", "--name", "华美生活")["created"] is False
    # The rule is shown as written: brackets in a message are not taken for terminal styling.
    refused = cli.run("tenant", "create", "--slug", "B", "--name", "x", ok=False)
    assert refused.returncode == 2
    assert "'^[a-z0-9][a-z0-9-]{1,39}$'" in refused.stderr, refused.stderr
    store = cli.json("store", "add", "-t", "huamei", "--code", "SH001", "--name", "上海来福士店",
                     "--city", "上海", "--province", "上海", "--type", "mall")
    assert store["code"] == "SH001"
    assert store["tenant"] == "huamei"
    guide = cli.json("staff", "add", "-t", str(merchant["id"]), "--staff-no", "G001", "--name", "王芳",
                     "--role", "guide", "--store", "SH001")
    assert guide["store_code"] == "SH001"
    key = cli.json("apikey", "create", "-t", "huamei", "--kind", "admin", "--scope", "stores:read,staff:read")
    assert key["key"].startswith("lja_")
    assert key["scopes"] == ["staff:read", "stores:read"]
    write = cli.json("apikey", "create", "-t", "huamei", "--kind", "write", "--source", "pos")
    assert write["key"].startswith("ljw_")
    assert write["source"] == "pos"
    listed = cli.json("apikey", "list", "-t", "huamei")["api_keys"]
    assert {k["id"] for k in listed} == {key["id"], write["id"]}
    assert key["key"] not in json.dumps(listed)
    assert cli.json("apikey", "revoke", "-t", "huamei", str(key["id"]))["revoked_at"]
    assert [s["code"] for s in cli.json("store", "list", "-t", "huamei")["stores"]] == ["SH001"]
    # The last '*' key stays, from the CLI too; the audit log says who did what from where.
    owner = cli.json("apikey", "create", "-t", "huamei", "--kind", "admin", "--scope", "*")
    refused = cli.run("apikey", "revoke", "-t", "huamei", str(owner["id"]), ok=False)
    assert refused.returncode == 1
    assert "last_full_key" in refused.stderr, refused.stderr
    log = cli.json("audit", "list", "-t", "huamei", "--action", "apikey.")
    assert [(e["action"], e["target"]) for e in log["entries"]] == [
        ("apikey.create", f"api_key:{owner['id']}"), ("apikey.revoke", f"api_key:{key['id']}"),
        ("apikey.create", f"api_key:{write['id']}"), ("apikey.create", f"api_key:{key['id']}")]
    assert all(e["actor"].startswith("cli:") for e in log["entries"])


def test_cli_errors_are_clear_and_change_nothing(cli: Cli) -> None:
    cli.run("db", "upgrade")
    cli.json("tenant", "create", "--slug", "huamei", "--name", "华美生活")
    bad_type = cli.run("store", "add", "-t", "huamei", "--code", "X1", "--name", "x", "--city", "x",
                       "--province", "x", "--type", "warehouse", ok=False)
    assert bad_type.returncode == 2
    assert "warehouse" in bad_type.stderr
    no_store = cli.run("staff", "add", "-t", "huamei", "--staff-no", "G1", "--name", "x", "--role", "guide",
                       "--store", "NOPE", ok=False)
    assert no_store.returncode == 1
    assert "store_not_found" in no_store.stderr
    unknown = cli.run("store", "list", "-t", "nobody", ok=False)
    assert unknown.returncode == 1
    assert "merchant_not_found" in unknown.stderr
    bad_scope = cli.run("apikey", "create", "-t", "huamei", "--kind", "admin", "--scope", "root", ok=False)
    assert bad_scope.returncode == 1
    assert "unknown_scope" in bad_scope.stderr
    assert cli.json("store", "list", "-t", "huamei")["stores"] == []
    assert cli.json("staff", "list", "-t", "huamei")["staff"] == []


def test_operator_reviews_identities_from_the_cli(cli: Cli, database_url: str | None) -> None:
    cli.run("db", "upgrade")
    loaded = cli.json("demo", "load", "--scale", "tiny")
    assert loaded["events"]["accepted"] > 0
    (coalition,) = loaded["coalitions"]
    assert coalition["cards"] > 0
    month = cli.json("coalition", "statement", "2026-10", "-c", coalition["code"])
    assert sum(line["points_issued"] for line in month["lines"]) > 0
    assert cli.json("demo", "load", "--scale", "tiny", "--if-empty")["loaded"] is False
    slug = loaded["merchants"][0]["slug"]
    truth = next((Path(loaded["world"]) / "truth").glob(f"{slug}-customers.csv")).read_text().splitlines()
    header = truth[0].split(",")
    member = next(dict(zip(header, line.split(","), strict=True)) for line in truth[1:]
                  if line.split(",")[header.index("member_no")])
    found = cli.json("identity", "find", "-t", slug, f"member_no={member['member_no']}")["profiles"]
    assert len(found) == 1
    assert ("member_no", member["member_no"]) in {(i["type"], i["value"]) for i in found[0]["identifiers"]}
    assert cli.run("identity", "find", "-t", slug, "member_no", ok=False).returncode == 2
    assert cli.json("identity", "suspicious", "-t", slug, "--min-merges", "2")["suspicious"] is not None
    blocked = cli.json("identity", "block", "-t", slug, "--type", "phone", "--value", "13911112222")
    assert blocked == {"blocked": True, "undone_merges": []}
    engine = create_db_engine(database_url or f"sqlite:///{cli.cwd / 'var' / 'lianjie.db'}")
    with engine.connect() as conn:
        merge_id = conn.scalar(select(Merge.id).join(Merchant, Merchant.id == Merge.tenant_id)
                               .where(Merchant.slug == slug).limit(1))
    engine.dispose()
    assert merge_id is not None, "the tiny world links some web visitors to members"
    undone = cli.json("identity", "unmerge", "-t", slug, str(merge_id))
    assert undone["id"] == merge_id
    again = cli.run("identity", "unmerge", "-t", slug, str(merge_id), ok=False)
    assert "already_undone" in again.stderr
    missing = cli.run("identity", "unmerge", "-t", slug, "999999", ok=False)
    assert missing.returncode == 1
    assert "merge_not_found" in missing.stderr
