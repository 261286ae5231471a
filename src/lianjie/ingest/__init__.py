"""Segment-compatible tracking API: validation, de-duplication, identity resolution, batch writes."""
