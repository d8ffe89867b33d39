"""Accounts, password hashing and tokens."""
