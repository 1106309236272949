"""The API side of the playbook: `etl serve` (app.py), `etl monitor`, `etl bench` and the load through the API.

This package sits above the stage, MySQL and check modules: it imports them, they never import it.
"""
