"""Supervision: findings (监督事项), opinion and decision letters (监督意见书、监督决定书), the agencies' reports, and
every step of them in the evidence log."""
