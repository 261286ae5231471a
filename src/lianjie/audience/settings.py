"""A merchant's trait settings: the RFM window, lifecycle thresholds and the CLV horizon.

Stored as one JSON document per merchant (``audience_settings``); until an operator saves one the
defaults apply. ``lifecycle.at_risk_days`` and ``lifecycle.lapsed_days`` are either both numbers
(the operator's thresholds) or both null, which means *derived* from the merchant's own
inter-purchase gaps each run (traits.py, :func:`derive_thresholds`).

A document is replaced whole; keys left out take their defaults, unknown keys are refused, and a
bad value is a 400 naming the field (``lifecycle.lapsed_days``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from lianjie.audience.models import TraitSettings
from lianjie.db import store_document
from lianjie.errors import BadRequest

MAX_DAYS = 3650


@dataclass(frozen=True)
class Lifecycle:
    new_days: int = 30  # a first purchase fewer than this many days ago: "new"
    reactivated_days: int = 30  # bought again after a lapse, this many days ago or fewer: "reactivated"
    at_risk_days: int | None = None  # None (with lapsed_days None): derived from the merchant's gaps
    lapsed_days: int | None = None
    at_risk_factor: float = 2.0  # derived at_risk = median gap x this factor

    @property
    def derived(self) -> bool:
        return self.at_risk_days is None


@dataclass(frozen=True)
class AudienceSettings:
    rfm_window_days: int = 365
    clv_horizon_days: int = 365
    lifecycle: Lifecycle = field(default_factory=Lifecycle)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _optional_days(doc: dict[str, Any], key: str, where: str) -> int | None:
    return None if doc.get(key) is None else _days(doc, key, where, 0)


def _days(doc: dict[str, Any], key: str, where: str, default: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise BadRequest(f"{where} must be a whole number of days from 1 to {MAX_DAYS}, not {value!r}", field=where)
    return value


def _known(doc: Any, keys: set[str], where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BadRequest(f"{where or 'settings'} must be an object", field=where or "settings")
    unknown = sorted(set(doc) - keys)
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise BadRequest(f"unknown setting {name!r}", field=name)
    return doc


def parse(doc: Any) -> AudienceSettings:
    """Validate a settings document (as an operator may send it)."""
    defaults = AudienceSettings()
    doc = _known(doc, {"rfm_window_days", "clv_horizon_days", "lifecycle"}, "")
    life = _known(doc.get("lifecycle", {}), {"new_days", "reactivated_days", "at_risk_days", "lapsed_days",
                                             "at_risk_factor"}, "lifecycle")
    d = defaults.lifecycle
    at_risk = _optional_days(life, "at_risk_days", "lifecycle.at_risk_days")
    lapsed = _optional_days(life, "lapsed_days", "lifecycle.lapsed_days")
    if (at_risk is None) != (lapsed is None):
        missing = "lifecycle.lapsed_days" if lapsed is None else "lifecycle.at_risk_days"
        raise BadRequest("set both at_risk_days and lapsed_days, or neither to derive them", field=missing)
    if at_risk is not None and lapsed is not None and lapsed <= at_risk:
        raise BadRequest(f"lapsed_days ({lapsed}) must be more than at_risk_days ({at_risk})",
                         field="lifecycle.lapsed_days")
    factor = life.get("at_risk_factor", d.at_risk_factor)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not 1 <= factor <= 10:
        raise BadRequest(f"lifecycle.at_risk_factor must be a number from 1 to 10, not {factor!r}",
                         field="lifecycle.at_risk_factor")
    lifecycle = Lifecycle(new_days=_days(life, "new_days", "lifecycle.new_days", d.new_days),
                          reactivated_days=_days(life, "reactivated_days", "lifecycle.reactivated_days",
                                                 d.reactivated_days),
                          at_risk_days=at_risk, lapsed_days=lapsed, at_risk_factor=float(factor))
    return AudienceSettings(
        rfm_window_days=_days(doc, "rfm_window_days", "rfm_window_days", defaults.rfm_window_days),
        clv_horizon_days=_days(doc, "clv_horizon_days", "clv_horizon_days", defaults.clv_horizon_days),
        lifecycle=lifecycle)


def load(session: Session, tenant_id: int) -> AudienceSettings:
    """The merchant's settings, or the defaults until an operator saves some (reading never writes)."""
    row = session.get(TraitSettings, tenant_id)
    return parse(row.config) if row is not None else AudienceSettings()


def save(session: Session, tenant_id: int, doc: Any) -> AudienceSettings:
    config = parse(doc)
    store_document(session, TraitSettings, tenant_id, config.to_json())
    return config
