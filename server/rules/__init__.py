"""The rules: scans decided, exceptions checked, enterprise codes, device register, decision snapshots, alerts."""
