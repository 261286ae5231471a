"""Products and their category tree; orders, refunds and POS import build on these."""
