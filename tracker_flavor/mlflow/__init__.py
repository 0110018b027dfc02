"""Reaching MLflow: connection, errors, REST client, private-API seam, the process's MLflow state.

The process's MLflow state is its environment, autologging, the embedded store and the system
metrics samplers (process.py holds them together).
"""
