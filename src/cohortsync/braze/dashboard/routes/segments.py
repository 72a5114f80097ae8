"""Segments: the builder with the partner cohort filter, reachable users, members."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
