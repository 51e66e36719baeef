"""Whole numbers in JSON bodies (amounts in cents, durations in seconds).

The OpenAPI document declares these fields ``type: integer``, and under JSON Schema
2020-12 (OpenAPI 3.1) ``1000.0`` *is* an integer: a client or a generator that writes
it follows the document. pydantic's strict mode refuses it, so the API rejected data
its own schema accepts (the fuzzing test, ``tests/api/test_fuzz_openapi.py``, found it
on bids). :data:`WHOLE` keeps what strict mode is here for (no numeric strings, no
booleans, no fractions: ``12.5``, ``"1000"`` and ``true`` stay 422) and takes a
whole-valued number however it is written. It goes *after* the field's constraints,
which keeps them in the schema as JSON Schema keywords (``exclusiveMinimum``,
``maximum``)::

    Cents = Annotated[int, Field(strict=True, gt=0, le=MAX_CENTS), WHOLE]
"""

from pydantic import BeforeValidator


def _whole(value: object) -> object:
    """``1000.0`` becomes ``1000``; anything else is left to the strict int check."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE = BeforeValidator(_whole)
