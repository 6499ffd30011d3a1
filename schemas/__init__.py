"""Moments wire formats: touchpoints, outcomes, decisions and the offer catalogue."""

from schemas.catalogue import (
    CatalogueError,
    Offer,
    OfferCatalogue,
    load_catalogue,
)
from schemas.contact_rules import ContactRules
from schemas.decisions import (
    Intervention,
    InterventionContext,
    NextBestOffer,
    OfferScore,
    decode_intervention,
    decode_next_best_offer,
    encode_decision,
)
from schemas.erasures import CustomerErasure, decode_erasure, encode_erasure
from schemas.errors import InvalidEvent
from schemas.outcomes import Outcome, decode_outcome, encode_outcome
from schemas.redrives import LetterRedriven, decode_redrive, encode_redrive, place
from schemas.touchpoints import (
    EVENT_TYPES,
    TOUCHPOINT_TYPES,
    Call,
    Consent,
    Email,
    Purchase,
    SocialMention,
    Survey,
    Touchpoint,
    TouchpointEvent,
    WebClick,
    decode_touchpoint,
    decode_touchpoints,
    encode_touchpoint,
)

__all__ = [
    "EVENT_TYPES",
    "TOUCHPOINT_TYPES",
    "Call",
    "CatalogueError",
    "Consent",
    "ContactRules",
    "CustomerErasure",
    "Email",
    "Intervention",
    "InterventionContext",
    "InvalidEvent",
    "LetterRedriven",
    "NextBestOffer",
    "Offer",
    "OfferCatalogue",
    "OfferScore",
    "Outcome",
    "Purchase",
    "SocialMention",
    "Survey",
    "Touchpoint",
    "TouchpointEvent",
    "WebClick",
    "decode_erasure",
    "decode_intervention",
    "decode_next_best_offer",
    "decode_outcome",
    "decode_redrive",
    "decode_touchpoint",
    "decode_touchpoints",
    "encode_decision",
    "encode_erasure",
    "encode_outcome",
    "encode_redrive",
    "encode_touchpoint",
    "load_catalogue",
    "place",
]
