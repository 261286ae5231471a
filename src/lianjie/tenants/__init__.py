"""Merchants (tenants), their stores, staff and shopping guides, and API keys with scopes."""
