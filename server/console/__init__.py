"""The console: HTTP API and pages (Jinja), sign-in, role guards, account management."""
