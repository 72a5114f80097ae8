"""Campaigns and Canvases: Target Audiences, Launch or Send at, and the outbox."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
