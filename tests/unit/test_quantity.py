"""Quantities are accepted exactly when Kubernetes accepts them, and come back in canonical form."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.model import k8s_types
from engine.model.quantity import QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        # Canonical forms from the Kubernetes Quantity documentation and apimachinery tests.
        ("0", "0"),
        ("1", "1"),
        ("1.5", "1500m"),
        ("1.5Gi", "1536Mi"),
        ("100m", "100m"),
        ("1000m", "1"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("1000000", "1M"),
        ("0.5", "500m"),
        ("0.001", "1m"),
        ("1n", "1n"),
        ("1u", "1u"),
        ("1k", "1k"),
        ("1M", "1M"),
        ("1G", "1G"),
        ("1T", "1T"),
        ("1P", "1P"),
        ("1E", "1E"),
        ("1Ki", "1Ki"),
        ("1Mi", "1Mi"),
        ("1Gi", "1Gi"),
        ("1Ti", "1Ti"),
        ("1Pi", "1Pi"),
        ("1Ei", "1Ei"),
        ("4Gi", "4Gi"),
        ("1024Ki", "1Mi"),
        ("1536Ki", "1536Ki"),
        ("1023Ki", "1023Ki"),
        ("0.5Ki", "512"),
        ("1.1Ki", "1126400m"),  # not whole: shown in decimal without losing precision
        ("1024", "1024"),
        ("1e3", "1e3"),
        ("1E3", "1e3"),
        ("1e+3", "1e3"),
        ("1.5e3", "1500"),
        ("12e6", "12e6"),
        ("3e-4", "300e-6"),
        ("1e-12", "1e-9"),  # rounded up to a whole nano
        ("0.1n", "1n"),
        ("0.0000000001", "1n"),
        ("-1.5", "-1500m"),
        ("-100m", "-100m"),
        ("-1Gi", "-1Gi"),
        ("+1Gi", "1Gi"),
        ("01", "1"),
        ("1.", "1"),
        (".5", "500m"),
        ("1.0", "1"),
        ("100Ei", "9223372036854775807"),  # binary values are capped at 2**63-1
        ("123456789012345678901234", "123456789012345678901234"),
        (" 2Gi ", "2Gi"),
        ("\t500m\n", "500m"),
        # Go reads digit-less numbers as zero.
        (".", "0"),
        ("+", "0"),
        ("Ki", "0"),
        ("0e-20", "0"),
    ],
)
def test_canonical_form(text: str, canonical: str) -> None:
    assert parse_quantity(text) == canonical


@pytest.mark.parametrize(
    ("number", "canonical"), [(5, "5"), (0, "0"), (0.5, "500m"), (2048, "2048"), (1e-05, "10e-6")]
)
def test_numbers_read_as_their_decimal_text(number: float, canonical: str) -> None:
    assert parse_quantity(number) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("abc", "expected a number"),
        ("1 Gi", "expected a number"),
        ("1Kib", "expected a number"),
        ("1.2.3", "expected a number"),
        ("1K", 'unknown suffix "K"'),
        ("1i", 'unknown suffix "i"'),
        ("1e", 'unknown suffix "e"'),
        ("1ki", 'unknown suffix "ki"'),
        ("1mm", 'unknown suffix "mm"'),
        ("e-10", "no digits"),
    ],
)
def test_invalid_quantities(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith("invalid quantity ")


@pytest.mark.parametrize("value", [True, None, float("nan"), [1]])
def test_non_quantity_values(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(value)  # type: ignore[arg-type]


@given(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi"]),
)
def test_canonical_form_is_stable(number: int, suffix: str) -> None:
    canonical = parse_quantity(f"{number}{suffix}")
    assert parse_quantity(canonical) == canonical


@given(st.integers(min_value=0, max_value=2**62), st.sampled_from(["Ki", "Mi", "Gi", "Ti"]))
def test_binary_canonical_form_has_the_same_value(number: int, suffix: str) -> None:
    powers = {"": 0, "Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
    value = min(number * 2 ** powers[suffix], 2**63 - 1)
    canonical = parse_quantity(f"{number}{suffix}")
    match = re.fullmatch(r"(\d+)((?:[KMGTPE]i)?|k|M|G|T|P|E)", canonical)
    assert match is not None, canonical
    digits, unit = match.groups()
    decimal = {"k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
    scale = 10 ** decimal[unit] if unit in decimal else 2 ** powers[unit]
    assert int(digits) * scale == value


QUANTITY_TEXT = st.from_regex(
    r"\A[+-]?[0-9]{1,4}(\.[0-9]{0,3})?([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,2})?\Z"
)


@given(QUANTITY_TEXT)
def test_numbers_the_plugin_checker_accepts_parse(text: str) -> None:
    # The checker's pattern also admits digit-less text such as ".e-20", which Go rejects; with at
    # least one digit both agree.
    assert re.match(k8s_types.QUANTITY_PATTERN, text)
    assert parse_quantity(text)
