"""Segment rules (人群圈选): a JSON rule language (rules.py), compiled to Ibis (compiler.py), stored and
snapshotted (models.py, service.py), served under ``/api/v1/segments`` (api.py) and exported for ad
platforms' custom audiences (export.py)."""
