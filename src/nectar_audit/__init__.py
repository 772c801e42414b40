"""Audit Linux VMs against the Nectar Research Cloud Security Administration Checklist."""

__version__ = "0.1.0"
