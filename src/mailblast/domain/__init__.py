"""The pure domain: state machines, the import swap, batch planning, CSV intake.

No I/O and no async here; this package imports only the standard library, attrs and
email-validator.
"""
