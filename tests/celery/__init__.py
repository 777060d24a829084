"""Integration tests of the Celery side against real ``celery worker`` processes."""
