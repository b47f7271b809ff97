"""Sample Celery application scaled by celery-scaler (web, worker, beat, flower)."""
