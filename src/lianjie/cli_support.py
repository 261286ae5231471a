"""What every ``lianjie`` CLI command shares: the unit of work, options, input validation and output.

Kept apart from ``cli.py`` so that groups of commands can live in their own modules (``cli_membership``)
without importing the application's command tree.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.orm import Session

from lianjie.config import get_settings
from lianjie.db import engine_from_settings, make_session_factory, transaction
from lianjie.errors import LianjieError
from lianjie.tenants import audit

console = Console()
err = Console(stderr=True)

M = TypeVar("M", bound=BaseModel)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Merchant slug or id.")]


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A session committed at the end of the command; domain errors become a clean exit."""
    engine = engine_from_settings(get_settings())
    try:
        with transaction(make_session_factory(engine), write=True) as session:
            audit.act_as(session, f"cli:{_os_user()}")
            yield session
    except LianjieError as exc:
        where = f" ({exc.field})" if exc.field else ""
        err.print(f"[red]error[/red] {exc.code}{escape(where)}: {escape(exc.message)}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()


def _os_user() -> str:
    """Who runs the command, for the audit log (``unknown`` where the OS cannot say)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def build(model: type[M], **values: Any) -> M:
    """Validate CLI input with the same schema the HTTP API uses."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        for problem in exc.errors():
            field = ".".join(str(p) for p in problem["loc"]) or "input"
            err.print(f"[red]invalid[/red] --{field.replace('_', '-')}: {escape(problem['msg'])}")
        raise typer.Exit(2) from exc


def emit(as_json: bool, payload: dict[str, Any], human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
    else:
        human()
