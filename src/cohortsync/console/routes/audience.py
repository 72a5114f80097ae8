"""Audience Studio: parent segments, the segment builder with its live count, Create Activation."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
