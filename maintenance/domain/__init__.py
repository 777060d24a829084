"""The pure core: vocabulary, status, policy, classifier, transitions, messages, validation
and the emergency plan.

Nothing here does I/O or imports SQLAlchemy, Redis, Flask or Celery: every
function is a function of its arguments, so web nodes, workers and the CLI
decide identically and the rules are tested without services.
"""
