"""Object storage for blobs that do not belong in PostgreSQL (card images).

:class:`ObjectStore` is the interface services use; :class:`LocalObjectStore` keeps
objects under ``<data_dir>/objects`` today, and an S3-compatible store can
implement the same four methods later without touching a caller.
"""

from api.storage.base import InvalidObjectKey, ObjectNotFound, ObjectStore, validate_key
from api.storage.local import LocalObjectStore, get_object_store

__all__ = [
    "InvalidObjectKey",
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "get_object_store",
    "validate_key",
]
