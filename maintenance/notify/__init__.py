"""Notifications: webhooks (generic JSON or Slack) for what on-call people must know.

An announced event-log entry gets one outbox row per endpoint in its own
transaction (``outbox``); a deliverer thread on long-running nodes, or
``maintenance notify deliver``, posts them signed (``signing``) with an idempotency
key, retrying with capped, jittered exponential backoff (``delivery``).
"""
