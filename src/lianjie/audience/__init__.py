"""Audience: customer traits (RFM, lifecycle, CLV) and segment rules."""
