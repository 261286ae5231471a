"""The codes of RFM groups and lifecycle stages with their zh-CN and English labels, in one place
(kept apart from traits.py so that the profile API need not import the warehouse and the models)."""

from __future__ import annotations

#: RFM group code -> (zh-CN, English), keyed below by (R high, F high, M high).
GROUPS: dict[str, tuple[str, str]] = {
    "important_value": ("重要价值客户", "Important value"),
    "important_development": ("重要发展客户", "Important to develop"),
    "important_maintain": ("重要保持客户", "Important to keep"),
    "important_winback": ("重要挽留客户", "Important to win back"),
    "general_value": ("一般价值客户", "General value"),
    "general_development": ("一般发展客户", "General to develop"),
    "general_maintain": ("一般保持客户", "General to keep"),
    "general_winback": ("一般挽留客户", "General to win back"),
}
GROUP_OF: dict[tuple[bool, bool, bool], str] = {
    (True, True, True): "important_value", (True, False, True): "important_development",
    (False, True, True): "important_maintain", (False, False, True): "important_winback",
    (True, True, False): "general_value", (True, False, False): "general_development",
    (False, True, False): "general_maintain", (False, False, False): "general_winback",
}
#: Lifecycle stage code -> (zh-CN, English).
STAGES: dict[str, tuple[str, str]] = {
    "prospect": ("潜在客户", "Prospect"),
    "new": ("新客户", "New"),
    "active": ("活跃客户", "Active"),
    "at_risk": ("流失预警客户", "At risk"),
    "lapsed": ("流失客户", "Lapsed"),
    "reactivated": ("回流客户", "Reactivated"),
}


def label(code: str | None, labels: dict[str, tuple[str, str]]) -> dict[str, str] | None:
    """``{"code", "zh", "en"}`` for a group or stage code (None stays None)."""
    if code is None:
        return None
    zh, en = labels[code]
    return {"code": code, "zh": zh, "en": en}
