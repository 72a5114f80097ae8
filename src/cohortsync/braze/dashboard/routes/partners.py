"""Partner Integrations > Technology Partners: partners, enabling, data import keys."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
