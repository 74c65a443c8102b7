"""The Django admin: one more interface over the services (DESIGN.md's administrator works here).

Status moves never happen here: a provision's status is chosen when it is added (writing its first
status change) and is read-only after that; moves go through `provision_transition`. Who sees and
changes what is decided by `provisions.permissions`: the admin asks it, on top of the Django model
permissions the role groups carry.
"""

from provisions.admin import access, consultations, gaps, partnership, provisions

__all__ = ["access", "consultations", "gaps", "partnership", "provisions"]
