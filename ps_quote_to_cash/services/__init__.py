"""Vendor adapters: vendor JSON in, canonical engagement out (no ORM)."""
