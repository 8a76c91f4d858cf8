"""Enforcement cases (案件) and the legal-review gate (法制审核): issue 15."""
