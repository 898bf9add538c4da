"""Fingerprint scoring of the stub API: visitor ids, confidence, similarity (hand-computed)."""

from __future__ import annotations

import pytest

from quotaquake.services.stub_api.models import Fingerprint
from quotaquake.services.stub_api.scoring import ATTRIBUTE_WEIGHTS, compare, identify, visitor_id

UA = "Mozilla/5.0 (X11; Linux x86_64)"


def fp(**fields: object) -> Fingerprint:
    return Fingerprint.model_validate({"user_agent": UA, **fields})


def test_weights_sum_to_one() -> None:
    assert sum(ATTRIBUTE_WEIGHTS.values()) == pytest.approx(1.0)


def test_confidence_is_the_sum_of_present_weights() -> None:
    result = identify(fp(canvas_hash="abcdef0123", fonts=["Arial"], timezone="UTC"))
    assert result.matched_attributes == ["canvas_hash", "fonts", "user_agent", "timezone"]
    assert result.confidence == pytest.approx(0.20 + 0.15 + 0.10 + 0.06)


def test_visitor_id_ignores_client_field_order_and_depends_on_attributes() -> None:
    a = Fingerprint.model_validate_json(f'{{"user_agent": "{UA}", "timezone": "UTC", "canvas_hash": "abcdef01"}}')
    b = Fingerprint.model_validate_json(f'{{"canvas_hash": "abcdef01", "timezone": "UTC", "user_agent": "{UA}"}}')
    c = Fingerprint.model_validate_json(f'{{"canvas_hash": "abcdef02", "timezone": "UTC", "user_agent": "{UA}"}}')
    assert visitor_id(a) == visitor_id(b)
    assert visitor_id(a) != visitor_id(c)
    assert visitor_id(a).startswith("fp_") and len(visitor_id(a)) == 23


def test_identical_fingerprints_are_the_same_visitor() -> None:
    result = compare(fp(canvas_hash="abcdef01"), fp(canvas_hash="abcdef01"))
    assert result.similarity == 1.0 and result.same_visitor
    assert result.differing_attributes == []


def test_similarity_is_weighted_share_of_equal_attributes() -> None:
    # Present on either side: canvas_hash (0.20, differs), user_agent (0.10, equal), timezone (0.06, one side).
    result = compare(fp(canvas_hash="abcdef01", timezone="UTC"), fp(canvas_hash="abcdef02"))
    assert result.similarity == pytest.approx(round(0.10 / 0.36, 4))
    assert result.matched_attributes == ["user_agent"]
    assert result.differing_attributes == ["canvas_hash", "timezone"]
    assert not result.same_visitor
