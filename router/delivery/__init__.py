"""Delivery: read the outbox, render, send with retries and rate limits, park failures in a DLQ."""
