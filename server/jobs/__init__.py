"""Scheduled supervision jobs, the scheduler that runs them once per cluster, random draws, disclosure."""
