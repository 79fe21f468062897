"""Offline channel adapters: contact-center and point-of-sale exports become touchpoints.

The parsing, mapping and derivation modules are pure (no Kafka); `runner` is the thin edge
that reads a file and publishes with the project's `Publisher`.
"""
