from __future__ import annotations

from fastapi.testclient import TestClient


def test_healthz_reports_the_database(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] in {"sqlite", "postgresql"}


def test_docs_and_openapi_are_served(client: TestClient) -> None:
    assert "swagger" in client.get("/docs").text.lower()
    spec = client.get("/openapi.json").json()
    assert "/api/v1/stores" in spec["paths"]
    assert "/healthz" in spec["paths"]


def test_unknown_route_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/nothing-here").status_code == 404
