"""User Search: a user found by external id, alias or device id, and the profile."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
