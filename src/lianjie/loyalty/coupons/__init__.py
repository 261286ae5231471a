"""Coupons: templates, issuance, validation at the till, redemption bound to an order, restoration on refund."""
